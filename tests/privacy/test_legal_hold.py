"""Legal hold (P-3a) on SQLite and PostgreSQL: an erased person's consent evidence is
held for the period after the last message, then purged in whole chains, keeping the
suppression hashes and a ledger that still verifies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from guestlist.audit import audit_entries
from guestlist.cli import app
from guestlist.consent.ledger import verify_ledger
from guestlist.privacy.erase import erase_profile
from guestlist.privacy.export import export_profile
from guestlist.privacy.legal_hold import hold_statement, purge_expired_evidence
from guestlist.store.tables import (
    consent_chain_checkpoints,
    consent_records,
    consent_texts,
    suppressions,
)
from guestlist.store.types import utcnow
from tests.privacy.conftest import USER_ID, Person, message, profile_of, send
from tests.privacy.retention_data import consent_at, customer

HOLD_DAYS = 1461
HOLD = timedelta(days=HOLD_DAYS)
runner = CliRunner()


def second_device(engine: Engine, person: Person) -> int:
    """A profile with a chain of its own (one consent record), then merged into the
    person: two chains, one person."""
    send(
        engine,
        person.source_id,
        [
            message("identify", 50, anonymousId="anon-2", messageId="m-a2"),
            message(
                "track",
                51,
                anonymousId="anon-2",
                event="Consent Updated",
                messageId="m-a2c",
                properties={"channel": "sms", "status": "granted", "identifier": "+14155550190"},
            ),
        ],
    )
    device = profile_of(engine, "anonymous_id", "anon-2")
    send(
        engine,
        person.source_id,
        [message("alias", 52, userId=USER_ID, previousId="anon-2", messageId="m-a2-alias")],
    )
    assert profile_of(engine, "anonymous_id", "anon-2") == person.profile_id != device
    return device


def erase(engine: Engine, profile_id: int) -> datetime:
    with engine.begin() as conn:
        report = erase_profile(conn, profile_id, actor="user:dpo", reason="asked")
    return report.erased_at


def records(engine: Engine, profile_id: int | None = None) -> list[Any]:
    query = select(consent_records).order_by(consent_records.c.chain_id, consent_records.c.seq)
    if profile_id is not None:
        query = query.where(consent_records.c.profile_id == profile_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def purge(engine: Engine, now: datetime, **kwargs: Any) -> Any:
    return purge_expired_evidence(engine, hold_days=HOLD_DAYS, now=now, **kwargs)


def test_evidence_is_held_for_the_period_then_purged_in_whole_chains(
    engine: Engine, person: Person
) -> None:
    """P-3a: held while now <= last message + period (the boundary itself is held),
    purged after; the suppression hashes and everyone else's evidence stay."""
    device = second_device(engine, person)
    other = customer(engine, person.source_id, "cust-other", utcnow(), {"status": "granted"})
    erased_at = erase(engine, person.profile_id)
    held = records(engine, person.profile_id)
    assert len(held) == 4 and {r.chain_id for r in held} == {person.profile_id, device}
    heads = {r.chain_id: (r.seq, r.record_hash) for r in held}  # the last of each chain
    suppressed = count(engine, suppressions)
    texts = count(engine, consent_texts)
    until = erased_at + HOLD  # the erasure is later than every record's times

    at_boundary = purge(engine, until)
    assert (at_boundary.profiles, at_boundary.records, at_boundary.still_held) == (0, 0, 1)
    assert at_boundary.next_expiry == until
    assert len(records(engine, person.profile_id)) == 4

    after = purge(engine, until + timedelta(microseconds=1))
    assert (after.profiles, after.chains, after.records, after.still_held) == (1, 2, 4, 0)
    assert records(engine, person.profile_id) == []
    assert len(records(engine, other)) == 1
    assert count(engine, suppressions) == suppressed > 0  # P-3: for ever
    assert count(engine, consent_texts) == texts
    with engine.connect() as conn:
        marks = list(conn.execute(select(consent_chain_checkpoints)))
    assert {m.chain_id: (m.last_seq, m.head_hash) for m in marks} == heads
    assert {(m.profile_id, m.held_until, m.records) for m in marks} == {
        (person.profile_id, until, 3),
        (person.profile_id, until, 1),
    }
    again = purge(engine, until + timedelta(days=1))
    assert (again.profiles, again.records) == (0, 0)


def test_the_ledger_still_verifies_after_a_purge(engine: Engine, person: Person) -> None:
    """P-3a, C-2a: whole chains go, so every chain left still verifies from its first
    record; tampering with one is still found."""
    second_device(engine, person)
    customer(engine, person.source_id, "cust-other", utcnow(), {"status": "granted"})
    erased_at = erase(engine, person.profile_id)
    purge(engine, erased_at + HOLD + timedelta(days=1))
    with engine.connect() as conn:
        checked, problems = verify_ledger(conn)
    assert (checked, problems) == (1, [])
    result = runner.invoke(app, ["privacy", "verify-ledger"])
    assert result.exit_code == 0, result.output
    assert "ledger intact" in result.output
    assert "2 chains purged after their legal hold" in result.output

    with engine.begin() as conn:
        conn.execute(update(consent_records).values(status="withdrawn"))
    assert runner.invoke(app, ["privacy", "verify-ledger"]).exit_code == 1


def test_export_reports_held_evidence_with_its_date(engine: Engine, person: Person) -> None:
    """P-3a, P-1: an erased person's export says until when the evidence is held, and
    after the purge that it was purged."""
    with engine.begin() as conn:
        live = export_profile(conn, person.profile_id, legal_hold_days=HOLD_DAYS)
    assert live["consent"]["legal_hold"] is None
    assert {r["legal_hold"] for r in live["consent"]["records"]} == {None}

    erased_at = erase(engine, person.profile_id)
    until = erased_at + HOLD
    statement = f"held under legal hold until {until.date().isoformat()}"
    assert hold_statement(until) == statement
    with engine.begin() as conn:
        held = export_profile(conn, person.merged_id, legal_hold_days=HOLD_DAYS)
    assert held["consent"]["legal_hold"] == {
        "status": "held",
        "held_until": until.isoformat(),
        "statement": statement,
    }
    assert [(r["reduced"], r["legal_hold"]) for r in held["consent"]["records"]] == [
        (True, statement)
    ] * 3

    purge(engine, until + timedelta(days=1))
    with engine.begin() as conn:
        gone = export_profile(conn, person.profile_id, legal_hold_days=HOLD_DAYS)
    assert gone["consent"]["records"] == []
    assert gone["consent"]["legal_hold"]["status"] == "purged"
    assert gone["consent"]["legal_hold"]["statement"].startswith("purged after its legal hold")
    assert len(gone["consent"]["legal_hold"]["chains"]) == 1


def test_a_legal_hold_dry_run_counts_and_changes_nothing(engine: Engine, person: Person) -> None:
    """P-3a: the dry run reports what would go and writes nothing, no audit entry."""
    now = erase(engine, person.profile_id) + HOLD + timedelta(days=1)
    before = records(engine)
    dry = purge(engine, now, dry_run=True)
    assert (dry.profiles, dry.chains, dry.records, dry.dry_run) == (1, 1, 3, True)
    assert records(engine) == before
    assert count(engine, consent_chain_checkpoints) == 0
    with engine.connect() as conn:
        assert audit_entries(conn, action="privacy.legal_hold_purged") == []
    real = purge(engine, now)
    assert (real.profiles, real.chains, real.records) == (1, 1, 3)


def test_each_run_is_audited_once_with_its_counts(engine: Engine, person: Person) -> None:
    """P-3a, P-6: one summary entry per run: who, and how much went."""
    now = erase(engine, person.profile_id) + HOLD + timedelta(days=1)
    purge(engine, now, actor="cli")
    with engine.connect() as conn:
        [entry] = audit_entries(conn, action="privacy.legal_hold_purged")
    assert entry.actor == "cli" and entry.profile_id is None
    detail = entry.detail
    assert (detail["hold_days"], detail["profiles"], detail["chains"], detail["records"]) == (
        HOLD_DAYS,
        1,
        1,
        3,
    )
    assert detail["dry_run"] is False and detail["now"] == now.isoformat()


def test_a_live_persons_evidence_is_never_purged(engine: Engine) -> None:
    """P-3a is about evidence that outlives an erased profile; a live profile's ledger
    is its consent, however old."""
    from tests.privacy.retention_data import source

    long_ago = utcnow() - timedelta(days=4000)
    pid = customer(engine, source(engine), "old-timer", long_ago)
    consent_at(engine, pid, "old-timer@example.com", long_ago)
    result = purge(engine, utcnow())
    assert (result.profiles, result.still_held) == (0, 0)
    assert len(records(engine, pid)) == 1


def test_the_last_consent_record_can_extend_the_hold(engine: Engine) -> None:
    """P-3a: the hold runs from the latest of the erasure and the records' times."""
    from tests.privacy.retention_data import source

    later = utcnow() + timedelta(days=30)  # a record stamped after the erasure
    pid = customer(engine, source(engine), "late", utcnow())
    consent_at(engine, pid, "late@example.com", later)
    erased_at = erase(engine, pid)
    assert later > erased_at
    assert purge(engine, erased_at + HOLD + timedelta(days=1)).still_held == 1
    assert purge(engine, later + HOLD + timedelta(seconds=1)).records == 1


def test_a_chain_shared_with_someone_else_is_never_cut(engine: Engine, person: Person) -> None:
    """P-3a, C-2a: only whole chains go; a chain that also holds another profile's
    record (which merges never make) is left whole and counted as skipped."""
    second_device(engine, person)
    now = erase(engine, person.profile_id) + HOLD + timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(
            update(consent_records)
            .where(consent_records.c.chain_id == person.profile_id, consent_records.c.seq == 1)
            .values(profile_id=person.bystander_id)
        )
    result = purge(engine, now)
    assert (result.chains, result.skipped_chains, result.records) == (1, 1, 1)
    left = records(engine)
    assert [(r.chain_id, r.seq) for r in left] == [(person.profile_id, s) for s in (1, 2, 3)]
    with engine.connect() as conn:
        assert verify_ledger(conn)[1] == []
