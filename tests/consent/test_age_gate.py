"""SMS-6a: SMS consent for a SHAFT shop is recorded together with the age check that
gated it, and the guard does not use SMS consent no age check gated (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from guestlist.canonical import CanonicalEvent
from guestlist.consent.inbound import apply_inbound_text
from guestlist.consent.ledger import ConsentError, parse_statement, verify_ledger
from guestlist.guard import Restriction, guard, load_facts
from guestlist.pipeline import process_events
from guestlist.store.tables import age_records, consent_records, events, identifiers

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
PHONE = "+14155550100"
SMS_ALCOHOL = Restriction("alcohol", channel="sms")
GATE = {"level": "dob_provided", "method": "dob_form", "passed_at": "2026-05-01T11:59:00Z"}


def _event(message_id: str, minutes: int, kind: str, **fields: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type=kind,
        message_id=message_id,
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=T0,
        source_id=1,
        user_id="ann",
        **fields,
    )


def signup() -> CanonicalEvent:
    return _event("signup", -60, "identify", traits={"phone": PHONE, "email": "ann@example.com"})


def sms_grant(message_id: str, minutes: int, **props: Any) -> CanonicalEvent:
    base = {"channel": "sms", "status": "granted", "identifier": PHONE,
            "text": "Yes, text me offers from Bottle Shop. 21+ only.",
            "legal_basis": "tcpa_written"}
    return _event(message_id, minutes, "track", name="Consent Updated", properties=base | props)


def age(message_id: str, minutes: int, birthday: str | None = "1990-01-18",
        level: str = "dob_provided", method: str = "dob_form") -> CanonicalEvent:
    props = {"level": level, "method": method, "country": "US", "region": "US-TX"}
    if birthday:
        props["birthday"] = birthday
    return _event(message_id, minutes, "track", name="Age Verified", properties=props)


def run(engine: Engine, *batch: CanonicalEvent) -> None:
    with engine.begin() as conn:
        process_events(conn, list(batch))


def ann(engine: Engine) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "user_id", identifiers.c.key == "ann"
            )
        )
    assert pid is not None
    return int(pid)


def gate_of(engine: Engine, message_id: str) -> Any:
    with engine.connect() as conn:
        proof = conn.scalar(
            select(consent_records.c.proof).where(consent_records.c.message_id == message_id)
        )
    return None if proof is None else proof.get("age_gate")


def age_record_id(engine: Engine, message_id: str) -> int:
    with engine.connect() as conn:
        found = conn.scalar(select(age_records.c.id).where(age_records.c.message_id == message_id))
    assert found is not None
    return int(found)


def reasons(engine: Engine, restriction: Restriction = SMS_ALCOHOL) -> list[str]:
    pid = ann(engine)
    with engine.connect() as conn:
        return guard(load_facts(conn, [pid])[pid], restriction, NOW).reasons


# --- recorded together ----------------------------------------------------------------------


def test_sms6a_the_grant_links_the_age_check_that_gated_it(engine: Engine) -> None:
    run(engine, signup(), age("a", 0), sms_grant("c", 0))  # one signup form, one batch
    assert gate_of(engine, "c") == {
        "from": "age_record",
        "age_record_id": age_record_id(engine, "a"),
        "level": "dob_provided",
        "method": "dob_form",
        "checked_at": T0.isoformat(),
        "dated": True,
    }
    assert reasons(engine) == []
    with engine.connect() as conn:
        assert verify_ledger(conn) == (1, [])


def test_sms6a_the_link_is_the_age_state_as_of_the_grant(engine: Engine) -> None:
    run(engine, signup(), age("gate", -30, birthday=None, level="database_check",
                             method="veratad"))
    run(engine, age("typed", -20))  # a dated check outranks an undated one
    run(engine, age("id", 30, level="id_document", method="id_scan"))  # after the grant
    run(engine, sms_grant("c", 0))
    gate = gate_of(engine, "c")
    assert (gate["age_record_id"], gate["level"], gate["dated"]) == (
        age_record_id(engine, "typed"), "dob_provided", True
    )


def test_sms6a_a_stated_gate_is_kept_as_the_event_gives_it(engine: Engine) -> None:
    run(engine, signup(), sms_grant("c", 0, age_gate=GATE | {"level": "DOB_Provided",
                                                           "provider": "Attentive"}))
    assert gate_of(engine, "c") == {
        "from": "event",
        "level": "dob_provided",
        "method": "dob_form",
        "provider": "Attentive",
        "passed_at": "2026-05-01T11:59:00+00:00",
    }


def test_sms6a_whatsapp_grants_are_linked_too_but_not_required(engine: Engine) -> None:
    """WhatsApp has no carrier vetting the opt-in: the check is kept as evidence, and
    the guard's own age rule is what Meta's policy asks for."""
    run(engine, signup(), sms_grant("w", 0, channel="whatsapp"))
    assert gate_of(engine, "w") is None  # no check on file yet
    run(engine, age("a", 30))
    assert reasons(engine, Restriction("alcohol", channel="whatsapp")) == []
    run(engine, sms_grant("w2", 40, channel="whatsapp"))
    assert gate_of(engine, "w2")["age_record_id"] == age_record_id(engine, "a")


def test_sms6a_email_and_withdrawals_carry_no_link(engine: Engine) -> None:
    run(engine, signup(), age("a", 0))
    run(engine, sms_grant("e", 1, channel="email", identifier="ann@example.com"),
        sms_grant("s", 2, status="withdrawn"))
    assert gate_of(engine, "e") is None and gate_of(engine, "s") is None


# --- the guard ------------------------------------------------------------------------------


def test_sms6a_sms_consent_no_age_check_gated_is_refused(engine: Engine) -> None:
    run(engine, signup(), sms_grant("c", 0))
    assert gate_of(engine, "c") is None  # nothing on file to link
    run(engine, age("a", 30))  # checked after the grant: it gated nothing
    assert reasons(engine) == ["sms_consent_not_age_gated"]
    assert reasons(engine, Restriction("alcohol", channel="email")) == ["consent_unknown"]
    run(engine, sms_grant("again", 40))  # opting in again, behind the check on file
    assert reasons(engine) == []


def test_sms6a_a_check_dated_before_the_grant_counts_whenever_it_arrives(engine: Engine) -> None:
    """The guard judges from what was said and when, not from arrival order (C-3)."""
    run(engine, signup(), sms_grant("c", 0))
    run(engine, age("late", -5))  # a POS check from before the grant, uploaded later
    assert gate_of(engine, "c") is None  # the record shows what was on file then …
    assert reasons(engine) == []  # … and the guard reads every check


def test_sms6a_a_check_that_showed_a_minor_gated_nothing(engine: Engine) -> None:
    """20 at the grant, 21 now: of age, but no 21+ gate let them in (Twilio 30956)."""
    birthday = (NOW - timedelta(hours=12)).date().replace(year=NOW.year - 21).isoformat()
    run(engine, signup(), age("a", 0, birthday=birthday), sms_grant("c", 1))
    assert gate_of(engine, "c")["dated"] is True  # the check is linked all the same
    assert reasons(engine) == ["sms_consent_not_age_gated"]


@pytest.mark.parametrize(
    ("gate", "admitted"),
    [
        ({"level": "self_declared"}, False),  # an "I am 21+" checkbox is not an SMS age gate
        ({"level": "dob_provided"}, True),
        ({"level": "id_document", "reference": "chk-1"}, True),
    ],
)
def test_sms6a_a_stated_gate_counts_from_a_typed_date_of_birth_up(
    engine: Engine, gate: dict[str, Any], admitted: bool
) -> None:
    run(engine, signup(), sms_grant("c", 0, age_gate=gate))
    run(engine, age("a", 30, level="id_document"))  # the guard's own age rule: met
    assert reasons(engine) == ([] if admitted else ["sms_consent_not_age_gated"])


def test_sms6a_an_undated_gate_counts_from_its_level(engine: Engine) -> None:
    run(engine, signup(), age("box", -2, birthday=None, level="self_declared"),
        sms_grant("c", 0))
    run(engine, age("id", 30, level="id_document"))
    assert gate_of(engine, "c")["level"] == "self_declared"
    assert reasons(engine) == ["sms_consent_not_age_gated"]
    run(engine, age("db", -1, birthday=None, level="database_check"))  # a provider's pass
    assert reasons(engine) == []


def test_sms6a_start_restores_the_gate_of_the_opt_in_it_restores(engine: Engine) -> None:
    run(engine, signup(), sms_grant("c", 0, age_gate=GATE))
    with engine.begin() as conn:
        for minutes, body in ((10, "STOP"), (20, "START")):
            apply_inbound_text(
                conn, channel="sms", from_number=PHONE, body=body, message_id=f"SM-{body}",
                received_at=T0 + timedelta(minutes=minutes), shop="Bottle Shop",
            )
    restored = gate_of(engine, "SM-START")
    assert restored == gate_of(engine, "c") and restored["from"] == "event"
    run(engine, age("a", 30, level="id_document"))
    assert reasons(engine) == []


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "field"),
    [
        ("yes", "age_gate"),
        ({}, "age_gate.level"),
        ({"level": "id_scan"}, "age_gate.level"),
        ({"level": 3}, "age_gate.level"),
        ({"level": "dob_provided", "birthday": "1990-01-18"}, "age_gate.birthday"),
        ({"level": "dob_provided", "passed_at": "yesterday"}, "age_gate.passed_at"),
        ({"level": "dob_provided", "passed_at": "2026-05-01T12:00:01Z"}, "age_gate.passed_at"),
        ({"level": "dob_provided", "method": "x" * 61}, "age_gate.method"),
    ],
)
def test_sms6a_a_bad_age_gate_names_the_property_and_nothing_is_stored(
    engine: Engine, gate: Any, field: str
) -> None:
    with pytest.raises(ConsentError) as exc:
        parse_statement({"channel": "sms", "status": "granted", "age_gate": gate},
                        event_time=T0)
    assert exc.value.field == field
    run(engine, signup(), sms_grant("c", 0, age_gate=gate))
    with engine.connect() as conn:
        (issue,) = conn.scalar(select(events.c.issues).where(events.c.message_id == "c"))
        assert conn.scalar(select(consent_records.c.id)) is None
    assert (issue["field"], issue["consent"]) == (f"properties.{field}", "not recorded")
