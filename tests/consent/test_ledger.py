"""The consent ledger through the pipeline (both databases); rule ids from compliance.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from guestlist.canonical import CanonicalEvent
from guestlist.consent.ledger import (
    ConsentError,
    channel_status,
    current_consent,
    parse_statement,
    verify_ledger,
)
from guestlist.pipeline import process_events
from guestlist.store.tables import consent_records, consent_texts, events, profiles

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
PHONE = "+14155550100"


def consent(message_id: str, minutes: int, user: str = "u1", **props: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type="track",
        name="Consent Updated",
        message_id=message_id,
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        properties=props,
    )


def identify(message_id: str, user: str, **traits: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type="identify",
        message_id=message_id,
        timestamp=T0,
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        traits=traits,
    )


def run(engine: Engine, *batch: CanonicalEvent) -> None:
    with engine.begin() as conn:
        process_events(conn, list(batch))


def sms_status(engine: Engine, user_profile: int | None = None) -> str:
    with engine.connect() as conn:
        pid = user_profile or conn.scalar(select(profiles.c.id).order_by(profiles.c.id))
        assert pid is not None
        return channel_status(current_consent(conn, pid), "sms")


def test_no_record_is_unknown_never_granted(engine: Engine) -> None:  # C-4
    run(engine, identify("i", "u1", phone=PHONE))
    assert sms_status(engine) == "unknown"


def test_every_statement_is_kept_and_state_is_derived(engine: Engine) -> None:  # C-1
    run(
        engine,
        consent(
            "a", 1, channel="sms", status="granted", identifier=PHONE, text="Yes, text me offers"
        ),
    )
    run(
        engine, consent("b", 2, channel="sms", status="withdrawn", identifier=PHONE, keyword="STOP")
    )
    with engine.connect() as conn:
        rows = conn.execute(select(consent_records).order_by(consent_records.c.seq)).all()
    assert [r.status for r in rows] == ["granted", "withdrawn"]
    assert sms_status(engine) == "withdrawn"


def test_record_carries_its_proof(engine: Engine) -> None:  # C-2
    text = "Yes, text me offers from Bottle Shop. Consent is not a condition of purchase."
    run(
        engine,
        consent(
            "a",
            1,
            channel="sms",
            status="granted",
            identifier="(415) 555-0100",
            text=text,
            url="https://shop.test/join",
            ip="203.0.113.9",
            user_agent="Mozilla/5.0",
            legal_basis="tcpa_written",
            store="Main St",
        ),
    )
    with engine.connect() as conn:
        row = conn.execute(select(consent_records)).one()
        stored_text = conn.scalar(select(consent_texts.c.text))
    assert row.identifier == PHONE  # the number consented, normalised
    assert (row.url, row.ip, row.user_agent, row.legal_basis) == (
        "https://shop.test/join",
        "203.0.113.9",
        "Mozilla/5.0",
        "tcpa_written",
    )
    assert row.message_id == "a" and row.source_id == 1
    assert row.event_time == T0 + timedelta(minutes=1)
    assert row.proof == {"store": "Main St"}
    assert stored_text == text


def test_consent_without_an_identifier_is_not_recorded(engine: Engine) -> None:  # C-2
    run(engine, consent("a", 1, channel="sms", status="granted"))  # the profile has no phone
    with engine.connect() as conn:
        assert conn.execute(select(consent_records)).first() is None
        issues = conn.scalar(select(events.c.issues))
    assert issues and issues[0]["field"] == "properties.identifier"


def test_identifier_defaults_to_the_profiles_own(engine: Engine) -> None:  # C-2
    run(engine, identify("i", "u1", phone="415 555 0100"))
    run(engine, consent("a", 1, channel="sms", status="granted"))
    with engine.connect() as conn:
        assert conn.scalar(select(consent_records.c.identifier)) == PHONE


def test_later_event_time_wins_and_late_older_record_changes_nothing(engine: Engine) -> None:  # C-3
    run(engine, consent("new", 10, channel="sms", status="withdrawn", identifier=PHONE))
    run(engine, consent("old", 5, channel="sms", status="granted", identifier=PHONE))
    with engine.connect() as conn:
        assert (
            conn.scalar(select(consent_records.c.id).where(consent_records.c.message_id == "old"))
            is not None
        )  # stored
    assert sms_status(engine) == "withdrawn"


def test_withdrawal_wins_a_tie(engine: Engine) -> None:  # C-3
    run(engine, consent("w", 5, channel="sms", status="withdrawn", identifier=PHONE))
    run(engine, consent("g", 5, channel="sms", status="granted", identifier=PHONE))
    assert sms_status(engine) == "withdrawn"
    run(engine, consent("g2", 6, channel="sms", status="granted", identifier=PHONE))
    assert sms_status(engine) == "granted"


def test_consent_stays_with_its_identifier_through_a_merge(engine: Engine) -> None:  # C-6
    run(engine, identify("i1", "u1", email="ann@shop.test", phone=PHONE))
    run(engine, identify("i2", "u2", email="ann2@shop.ca", phone="+14155550199"))
    run(engine, consent("c1", 1, user="u1", channel="sms", status="granted"))
    # alias: u2 is u1, so their profiles merge.
    run(
        engine,
        CanonicalEvent(
            type="alias",
            message_id="al",
            timestamp=T0,
            received_at=datetime.now(UTC),
            source_id=1,
            user_id="u1",
            previous_id="u2",
        ),
    )
    with engine.connect() as conn:
        survivors = conn.scalars(select(profiles.c.id).where(profiles.c.merged_into.is_(None)))
        (pid,) = list(survivors)
        states = current_consent(conn, pid)
    assert [(s.identifier, s.status) for s in states] == [(PHONE, "granted")]


def test_implied_consent_expires(engine: Engine) -> None:  # C-7
    run(
        engine,
        consent(
            "p",
            0,
            channel="email",
            status="granted",
            kind="implied",
            basis="purchase",
            identifier="ann@shop.ca",
        ),
    )
    with engine.connect() as conn:
        pid = conn.scalar(select(profiles.c.id))
        assert pid is not None
        (state,) = current_consent(conn, pid, now=T0 + timedelta(days=700))
        assert state.status == "granted"
        (state,) = current_consent(conn, pid, now=T0 + timedelta(days=731))
        assert state.status == "expired"
        assert (
            channel_status(current_consent(conn, pid, now=T0 + timedelta(days=731)), "email")
            == "expired"
        )


def test_implied_consent_needs_an_expiry() -> None:  # C-7
    with pytest.raises(ConsentError) as exc:
        parse_statement(
            {"channel": "email", "status": "granted", "kind": "implied", "identifier": "a@shop.ca"},
            event_time=T0,
        )
    assert exc.value.field == "expires_at"


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"channel": "fax", "status": "granted"}, "channel"),
        ({"channel": "sms", "status": "granted", "purpose": "spam"}, "purpose"),
        ({"channel": "sms", "status": "maybe"}, "status"),
        ({"channel": "sms"}, "status"),
        ({"channel": "sms", "status": "granted", "identifier": "not a phone"}, "identifier"),
        ({"channel": "email", "status": "granted", "identifier": "a@"}, "identifier"),
        ({"channel": "sms", "status": "granted", "expires_at": "soon"}, "expires_at"),
        ({"channel": "sms", "status": "granted", "kind": "assumed"}, "kind"),
    ],
)
def test_bad_statements_name_the_field(props: dict[str, Any], field: str) -> None:
    with pytest.raises(ConsentError) as exc:
        parse_statement(props, event_time=T0)
    assert exc.value.field == field


def test_chain_verifies_and_detects_tampering(engine: Engine) -> None:  # C-2a
    for i, status in enumerate(["granted", "withdrawn", "granted"]):
        run(engine, consent(f"m{i}", i, channel="sms", status=status, identifier=PHONE))
    with engine.connect() as conn:
        assert verify_ledger(conn) == (3, [])
    with engine.begin() as conn:  # someone rewrites history
        conn.execute(
            update(consent_records).where(consent_records.c.seq == 2).values(status="granted")
        )
    with engine.connect() as conn:
        checked, problems = verify_ledger(conn)
    assert checked == 3 and [p.seq for p in problems] == [2]
    with engine.begin() as conn:  # or removes a record
        conn.execute(consent_records.delete().where(consent_records.c.seq == 2))
    with engine.connect() as conn:
        _, problems = verify_ledger(conn)
    assert {p.problem.split(":")[0] for p in problems} >= {"sequence jumps from 1 to 3"}


def test_erasure_blanking_keeps_the_chain_verifiable(engine: Engine) -> None:  # C-2a, P-3a
    run(
        engine, consent("a", 1, channel="sms", status="granted", identifier=PHONE, ip="203.0.113.9")
    )
    with engine.begin() as conn:
        conn.execute(
            update(consent_records).values(identifier=None, ip=None, user_agent=None, proof=None)
        )
    with engine.connect() as conn:
        assert verify_ledger(conn) == (1, [])
