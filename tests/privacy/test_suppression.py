"""Suppression after erasure (both databases); rule ids from compliance.md."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from guestlist.audit import audit_entries
from guestlist.canonical import CanonicalEvent
from guestlist.capture.imports import import_file
from guestlist.consent.ledger import CHANNELS, channel_status, current_consent, verify_ledger
from guestlist.consent.optout import is_suppressed
from guestlist.identity.graph import BatchResolver
from guestlist.identity.rules import load_rules
from guestlist.pipeline import process_events
from guestlist.privacy.erase import erase_profile
from guestlist.privacy.suppression import screen_batch, suppress_address
from guestlist.store.tables import consent_records, installation_secrets, suppressions
from tests.privacy.conftest import (
    ALT_EMAIL,
    EMAIL,
    EMAIL_KEY,
    PHONE,
    PHONE_KEY,
    Person,
    profile_of,
)

LATER = datetime(2027, 1, 10, 9, tzinfo=UTC)


def erase(engine: Engine, profile_id: int) -> None:
    with engine.begin() as conn:
        erase_profile(conn, profile_id, actor="cli", reason="asked")


def statuses(engine: Engine, profile_id: int) -> dict[str, str]:
    with engine.connect() as conn:
        states = current_consent(conn, profile_id)
    return {c: channel_status(states, c) for c in ("email", "sms", "whatsapp", "phone")}


def event(
    message_id: str, at: datetime, *, name: str | None = None, **fields: Any
) -> CanonicalEvent:
    return CanonicalEvent(
        type="track" if name else "identify",
        name=name,
        message_id=message_id,
        timestamp=at,
        received_at=datetime.now(UTC),
        source_id=1,
        **fields,
    )


def import_rows(engine: Engine, tmp_path: Path, rows: list[dict[str, str]], name: str) -> None:
    path = tmp_path / name
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = import_file(engine, path, "crm-2019")
    assert report.imported == len(rows)


def test_erasure_keeps_only_salted_hashes_of_each_address_per_channel(
    engine: Engine, person: Person
) -> None:  # P-3
    erase(engine, person.profile_id)
    with engine.connect() as conn:
        rows = conn.execute(select(suppressions)).all()
        assert {(r.kind, r.channel) for r in rows} == {
            ("email", "email"),
            ("phone", "sms"),
            ("phone", "whatsapp"),
            ("phone", "phone"),
        }
        assert len(rows) == 2 + 3  # two addresses by email, one number on three channels
        assert {r.reason for r in rows} == {"erasure"}
        assert all(len(r.identifier_hash) == 64 for r in rows)
        # Keyed per installation: a plain hash of the address would not match.
        assert conn.scalar(
            select(installation_secrets.c.name).where(installation_secrets.c.name == "suppression")
        )
        assert [c for c in CHANNELS if is_suppressed(conn, c, PHONE_KEY)] == [
            "sms",
            "whatsapp",
            "phone",
        ]
        assert [c for c in CHANNELS if is_suppressed(conn, c, "zq.alt@example.net")] == ["email"]
        assert not is_suppressed(conn, "email", "someone.else@example.com")
        # Each suppression is audited, without the address (P-6).
        added = audit_entries(conn, action="suppression.added")
        assert len(added) == 5 and {e.actor for e in added} == {"cli"}
        assert not [e for e in added if PHONE_KEY in str(e.detail) or "@" in str(e.detail)]


def test_a_returning_import_of_an_erased_address_stays_opted_out(
    engine: Engine, person: Person, tmp_path: Path
) -> None:  # P-3
    erase(engine, person.profile_id)
    # The shop imports its old customer file again: same address, other spelling.
    import_rows(engine, tmp_path, [{"Email": EMAIL.upper(), "Phone": PHONE, "Name": "Z"}], "a.csv")
    back = profile_of(engine, "email", EMAIL_KEY)
    assert back != person.profile_id
    assert statuses(engine, back) == {
        "email": "withdrawn",
        "sms": "withdrawn",
        "whatsapp": "withdrawn",
        "phone": "withdrawn",
    }
    with engine.connect() as conn:
        records = conn.execute(
            select(consent_records).where(consent_records.c.profile_id == back)
        ).all()
    assert {r.recorded_by for r in records} == {"suppression"}
    assert all(r.proof["reason"] == "erased earlier" for r in records)
    assert {r.purpose for r in records} == {"marketing", "sale_sharing"}
    # Importing again (another file with the address) does not pile up records.
    import_rows(engine, tmp_path, [{"email": EMAIL, "tier": "gold"}], "b.csv")
    with engine.connect() as conn:
        assert (
            conn.scalar(
                select(func.count())
                .select_from(consent_records)
                .where(consent_records.c.profile_id == back)
            )
            == len(records)
            == 8  # 4 channels x 2 marketing purposes
        )
        assert verify_ledger(conn)[1] == []


def test_an_identify_through_the_pipeline_is_screened_and_a_later_grant_still_wins(
    engine: Engine, person: Person
) -> None:  # P-3, C-3
    erase(engine, person.profile_id)
    with engine.begin() as conn:
        process_events(conn, [event("back-1", LATER, user_id="new-1", traits={"email": ALT_EMAIL})])
    back = profile_of(engine, "user_id", "new-1")
    assert statuses(engine, back)["email"] == "withdrawn"
    # A grant in the same batch at the same time loses the tie (C-3) ...
    with engine.begin() as conn:
        process_events(
            conn,
            [
                event("back-2", LATER, user_id="new-2", traits={"email": EMAIL}),
                event(
                    "back-3",
                    LATER,
                    name="Consent Updated",
                    user_id="new-2",
                    properties={"channel": "email", "status": "granted"},
                ),
            ],
        )
    assert statuses(engine, profile_of(engine, "user_id", "new-2"))["email"] == "withdrawn"
    # ... while the person's own consent, given later, counts: it is not silent.
    with engine.begin() as conn:
        process_events(
            conn,
            [
                event(
                    "back-4",
                    LATER + timedelta(days=1),
                    name="Consent Updated",
                    user_id="new-1",
                    properties={"channel": "email", "status": "granted", "text": "Sign me up"},
                ),
                event(
                    "back-5",
                    LATER + timedelta(days=2),
                    user_id="new-1",
                    traits={"email": ALT_EMAIL, "plan": "vip"},
                ),
            ],
        )
    assert statuses(engine, back)["email"] == "granted"


def test_a_statement_older_than_the_erasure_cannot_outrank_it(
    engine: Engine, person: Person
) -> None:  # P-3, C-3
    erase(engine, person.profile_id)
    old = datetime(2020, 1, 1, tzinfo=UTC)  # a late delivery from before the erasure
    with engine.begin() as conn:
        process_events(
            conn,
            [
                event("old-1", old, user_id="old", traits={"phone": PHONE}),
                event(
                    "old-2",
                    old + timedelta(days=1),
                    name="Consent Updated",
                    user_id="old",
                    properties={"channel": "sms", "status": "granted"},
                ),
            ],
        )
    assert statuses(engine, profile_of(engine, "user_id", "old"))["sms"] == "withdrawn"


def test_a_household_member_keeps_consent_given_for_a_shared_number(engine: Engine) -> None:
    # P-3, C-6: the other person's own statements for the number are theirs.
    two_people = [
        event("h-1", LATER, user_id="ann", traits={"phone": PHONE, "birthday": "1970-01-01"}),
        event("h-2", LATER, user_id="bo", traits={"phone": PHONE, "birthday": "2001-05-05"}),
        event(
            "h-3",
            LATER,
            name="Consent Updated",
            user_id="bo",
            properties={"channel": "sms", "status": "granted"},
        ),
    ]
    with engine.begin() as conn:
        process_events(conn, two_people)
    ann, bo = profile_of(engine, "user_id", "ann"), profile_of(engine, "user_id", "bo")
    assert ann != bo
    erase(engine, ann)
    with engine.begin() as conn:
        process_events(
            conn, [event("h-4", LATER + timedelta(hours=1), user_id="bo", traits={"phone": PHONE})]
        )
    assert statuses(engine, bo)["sms"] == "granted"


def test_the_screen_does_nothing_while_the_suppression_list_is_empty(engine: Engine) -> None:
    # P-3: cheap for every batch of an installation that never erased anyone.
    batch = [event("e-1", LATER, user_id="u", traits={"email": "x@example.com"})]
    with engine.begin() as conn:
        found = BatchResolver(conn, load_rules()).resolve(batch)
        assert screen_batch(conn, batch, found) == 0
        # Not even the secret was made.
        assert conn.scalar(select(func.count()).select_from(installation_secrets)) == 0
        assert suppress_address(conn, "email", "x@example.com", reason="erasure", actor="t") == 1
        assert screen_batch(conn, batch, found) == 2  # marketing and sale_sharing
        assert screen_batch(conn, batch, found) == 0  # once per profile and address
