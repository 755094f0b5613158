"""Erasure (both databases); rule ids from compliance.md."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from guestlist.audit import audit_entries
from guestlist.consent.ledger import verify_ledger
from guestlist.jobs.worker import Worker
from guestlist.privacy.erase import (
    ERASE_AT_CONNECTION,
    ProfileAlreadyErased,
    ProfileNotFound,
    erase_profile,
    register_connection_eraser,
    unregister_connection_eraser,
)
from guestlist.store.tables import (
    consent_records,
    consent_texts,
    identifiers,
    inbox,
    jobs,
    metadata,
    profile_merges,
    profile_scoped_tables,
    profiles,
)
from tests.privacy.conftest import (
    BYSTANDER_EMAIL,
    PERSONAL,
    SMS_TEXT,
    Person,
)


def erase(engine: Engine, profile_id: int, reason: str = "customer asked") -> Any:
    with engine.begin() as conn:
        return erase_profile(conn, profile_id, actor="user:dpo", reason=reason)


def every_row(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table, as text (bytes decoded), by table."""
    out: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = []
            for row in conn.execute(select(table)).mappings():
                values = [
                    bytes(v).decode("utf-8", "replace")
                    if isinstance(v, bytes | memoryview)
                    else orjson.dumps(v, default=str).decode()
                    for v in row.values()
                ]
                rows.append(" | ".join(values))
            out[table.name] = rows
    return out


def test_erasure_leaves_no_personal_data_in_any_profile_scoped_table(
    engine: Engine, person: Person
) -> None:  # P-2
    report = erase(engine, person.profile_id)
    ids = {person.profile_id, person.merged_id}
    assert set(report.erased_profile_ids) == ids
    with engine.connect() as conn:
        for table in profile_scoped_tables():
            left = conn.execute(select(table).where(table.c.profile_id.in_(ids))).mappings().all()
            if table is consent_records:
                # P-3a: kept as evidence, reduced to hashes and proof.
                assert left, "consent evidence must outlive the profile"
                for row in left:
                    assert row["identifier"] is row["ip"] is row["user_agent"] is None
                    assert row["proof"] is None
                    assert row["identifier_hash"] and row["personal_hash"]
            else:
                assert left == [], f"{table.name} still holds rows of the erased person"
        assert (
            conn.execute(
                select(profile_merges).where(profile_merges.c.merged_profile_id.in_(ids))
            ).all()
            == []
        )
        tombstones = conn.execute(select(profiles).where(profiles.c.id.in_(ids))).all()
        assert len(tombstones) == 2 and all(t.erased_at is not None for t in tombstones)
    # The bystander, who shared an inbox batch with the person, keeps everything.
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(func.count())
                .select_from(identifiers)
                .where(identifiers.c.profile_id == person.bystander_id)
            )
            == 2
        )
    assert report.rows_deleted["events"] >= 5
    assert report.consent_records_reduced == 3


def test_erasure_leaves_no_personal_value_anywhere_in_the_database(
    engine: Engine, person: Person
) -> None:  # P-2
    before = every_row(engine)
    # The check can fail: before erasure the values are there.
    assert all(
        any(value.lower() in row.lower() for rows in before.values() for row in rows)
        for value in PERSONAL
    )
    erase(engine, person.profile_id)
    after = every_row(engine)
    for name, rows in after.items():
        for row in rows:
            for value in PERSONAL:
                assert value.lower() not in row.lower(), f"{value!r} left in {name}: {row}"
    # What must stay does: the bystander's raw message, the consent wording.
    assert any(BYSTANDER_EMAIL in row for row in after["inbox"])
    assert any(SMS_TEXT in row for row in after["consent_texts"])


def test_inbox_batches_keep_the_other_people_and_replay_to_the_same_ids(
    engine: Engine, person: Person
) -> None:  # P-2
    from guestlist.inbox.parsers import parse_envelope
    from guestlist.inbox.store import load_envelopes

    with engine.connect() as conn:
        # The first batch carries the person and the bystander.
        shared_id = conn.scalar(select(inbox.c.id).order_by(inbox.c.id).limit(1))
        assert shared_id is not None
        before = [e.message_id for e in parse_envelope(load_envelopes(conn, [shared_id])[0])]
    report = erase(engine, person.profile_id)
    assert report.inbox_envelopes_redacted == 3
    with engine.connect() as conn:
        [env] = load_envelopes(conn, [shared_id])
        after = [e.message_id for e in parse_envelope(env)]
        statuses = {r.status for r in conn.execute(select(inbox.c.status))}
    assert after == [m for m in before if not m.startswith("m-")] == [f"gl-{shared_id}-1"]
    assert statuses == {"processed", "erased"}


def test_erasure_queues_one_job_per_connection_holding_the_person(
    engine: Engine, person: Person
) -> None:  # P-2
    report = erase(engine, person.profile_id)
    assert [j.connection for j in report.destination_jobs] == ["mailchimp:main", "klaviyo:eu"]
    with engine.connect() as conn:
        queued = conn.execute(select(jobs).order_by(jobs.c.id)).all()
    assert [(j.kind, j.status) for j in queued] == [(ERASE_AT_CONNECTION, "queued")] * 2
    assert [{k: v for k, v in j.args.items() if k != "requested_at"} for j in queued] == [
        {
            "profile_id": person.profile_id,
            "connection": "mailchimp:main",
            "external_id": "mc-member-5512",
        },
        {"profile_id": person.profile_id, "connection": "klaviyo:eu", "external_id": "kl-01HZX"},
    ]
    assert all(j.unique_key for j in queued)


def test_a_destination_job_without_its_connector_fails_visibly_and_one_with_it_runs(
    engine: Engine, person: Person
) -> None:  # P-2
    erase(engine, person.profile_id)
    called: list[dict[str, Any]] = []
    register_connection_eraser("klaviyo:eu", lambda _engine, args: called.append(args))
    try:
        Worker(engine).run_once()
    finally:
        unregister_connection_eraser("klaviyo:eu")
    with engine.connect() as conn:
        by_connection = {j.args["connection"]: j for j in conn.execute(select(jobs))}
    assert by_connection["klaviyo:eu"].status == "done"
    assert [a["external_id"] for a in called] == ["kl-01HZX"]
    mailchimp = by_connection["mailchimp:main"]
    assert mailchimp.status == "queued" and mailchimp.attempts == 1  # retried with backoff
    assert "no destination connector for mailchimp:main" in mailchimp.last_error
    with engine.connect() as conn:
        done = audit_entries(conn, action="profile.erased_at_connection")
    assert [(e.profile_id, e.detail) for e in done] == [
        (person.profile_id, {"connection": "klaviyo:eu"})
    ]


def test_erasing_a_merged_away_id_erases_the_person_it_joined(
    engine: Engine, person: Person
) -> None:  # P-2
    report = erase(engine, person.merged_id)
    assert report.requested_id == person.merged_id
    assert report.profile_id == person.profile_id
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(func.count())
                .select_from(identifiers)
                .where(identifiers.c.profile_id == person.profile_id)
            )
            == 0
        )


def test_erasing_twice_or_an_unknown_id_is_a_clear_error(
    engine: Engine, person: Person
) -> None:  # P-2
    erase(engine, person.profile_id)
    for pid in (person.profile_id, person.merged_id):
        with pytest.raises(ProfileAlreadyErased, match=f"profile {person.profile_id} was already"):
            erase(engine, pid)
    with pytest.raises(ProfileNotFound):
        erase(engine, 987654)


def test_erasure_is_audited_without_the_erased_data(engine: Engine, person: Person) -> None:
    # P-6, P-2
    erase(engine, person.profile_id, reason="GDPR Art. 17 request #4411")
    with engine.connect() as conn:
        [entry] = audit_entries(conn, profile_id=person.profile_id, action="profile.erased")
    assert entry.actor == "user:dpo"
    assert entry.reason == "GDPR Art. 17 request #4411"
    assert entry.detail["erased_profile_ids"] == [person.profile_id, person.merged_id]
    assert entry.detail["addresses_suppressed"] == 3  # two emails, one phone
    text = orjson.dumps(entry.detail).decode().lower()
    assert not [value for value in PERSONAL if value.lower() in text]


def test_consent_evidence_outlives_the_profile_and_the_chain_verifies(
    engine: Engine, person: Person
) -> None:  # P-3a, C-2a
    with engine.connect() as conn:
        checked, problems = verify_ledger(conn)
        before = conn.execute(
            select(
                consent_records.c.id, consent_records.c.record_hash, consent_records.c.text_hash
            ).order_by(consent_records.c.id)
        ).all()
    assert problems == [] and checked == 3
    erase(engine, person.profile_id)
    with engine.connect() as conn:
        assert verify_ledger(conn) == (3, [])
        after = conn.execute(
            select(
                consent_records.c.id, consent_records.c.record_hash, consent_records.c.text_hash
            ).order_by(consent_records.c.id)
        ).all()
        texts = set(conn.scalars(select(consent_texts.c.text)))
    assert after == before  # same records, same hashes: nothing rewritten
    assert SMS_TEXT in texts
