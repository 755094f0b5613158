"""E-3: consent for EU/UK recipients is opt-in; the soft opt-in (PECR reg. 22) is
recorded as `implied` with its basis and evidence (both databases)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from guestlist.canonical import CanonicalEvent
from guestlist.consent.eu_uk import (
    EU_UK_COUNTRIES,
    in_eu_uk,
    number_in_eu_uk,
    recipient_in_eu_uk,
)
from guestlist.consent.ledger import (
    ConsentError,
    channel_status,
    current_consent,
    parse_statement,
    verify_ledger,
)
from guestlist.guard import Restriction, guard, load_facts
from guestlist.pipeline import process_events
from guestlist.settings import get_settings
from guestlist.store.tables import consent_records, consent_state, events, identifiers

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
EMAIL = "ann@example.co.uk"
US_PHONE = "+14155550100"
UK_PHONE = "+447400123456"
EMAIL_ALCOHOL = Restriction("alcohol", channel="email")
SOFT = {"legal_basis": "soft_opt_in", "order_id": "#1042", "opt_out_offered": True}


@pytest.fixture(autouse=True)
def no_default_jurisdiction() -> Iterator[None]:
    saved = os.environ.pop("GUESTLIST_DEFAULT_JURISDICTION", None)
    get_settings.cache_clear()
    yield
    if saved is not None:
        os.environ["GUESTLIST_DEFAULT_JURISDICTION"] = saved
    get_settings.cache_clear()


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


def consent(message_id: str, minutes: int, **props: Any) -> CanonicalEvent:
    base = {"channel": "email", "status": "granted", "identifier": EMAIL}
    return _event(message_id, minutes, "track", name="Consent Updated", properties=base | props)


def age(message_id: str, minutes: int, country: str | None = "GB") -> CanonicalEvent:
    props = {"birthday": "1990-01-18", "level": "id_document"}
    if country:
        props["country"] = country
    return _event(message_id, minutes, "track", name="Age Verified", properties=props)


def signup(**traits: Any) -> CanonicalEvent:
    return _event("signup", 0, "identify", traits={"email": EMAIL, "phone": US_PHONE} | traits)


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


def issues(engine: Engine, message_id: str) -> Any:
    with engine.connect() as conn:
        return conn.scalar(select(events.c.issues).where(events.c.message_id == message_id))


def ledger(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(consent_records).order_by(consent_records.c.id)))


def decision(engine: Engine, restriction: Restriction = EMAIL_ALCOHOL) -> list[str]:
    pid = ann(engine)
    with engine.connect() as conn:
        return guard(load_facts(conn, [pid])[pid], restriction, NOW).reasons


# --- who is an EU/UK recipient -----------------------------------------------------------


@pytest.mark.parametrize(
    ("jurisdiction", "inside"),
    [("GB", True), ("DE", True), ("ES-CN", True), ("NO", True), ("GG", True), ("RE", True),
     ("US-TX", False), ("CA-QC", False), ("CH", False), (None, False)],
)
def test_e3_jurisdictions_in_the_eu_eea_and_uk(jurisdiction: str | None, inside: bool) -> None:
    assert in_eu_uk(jurisdiction) is inside


@pytest.mark.parametrize(
    ("number", "inside"),
    [(UK_PHONE, True), ("+353851234567", True), ("+4915112345678", True),
     ("+351912345678", True), ("+4791234567", True), (US_PHONE, False),
     ("+41791234567", False), ("+5511912345678", False), ("", False), ("4477", False)],
)
def test_e3_numbers_by_their_calling_code(number: str, inside: bool) -> None:
    assert number_in_eu_uk(number) is inside


def test_e3_the_number_counts_only_on_phone_channels() -> None:
    assert recipient_in_eu_uk("sms", UK_PHONE, "US-TX")
    assert recipient_in_eu_uk("whatsapp", UK_PHONE, None)
    assert not recipient_in_eu_uk("email", "ann@example.com", "US-TX")
    assert recipient_in_eu_uk("email", "ann@example.com", "FR")
    assert not recipient_in_eu_uk("sms", US_PHONE, None)  # unknown: not known to be EU/UK


def test_e3_the_list_holds_the_27_eu_states_the_eea_and_the_uk() -> None:
    eu = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
          "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}
    assert len(eu) == 27
    assert eu | {"IS", "LI", "NO", "GB"} <= EU_UK_COUNTRIES


# --- what a statement alone shows -------------------------------------------------------


def test_e3_soft_opt_in_is_recorded_as_implied_with_its_evidence() -> None:
    st = parse_statement(
        {"channel": "sms", "status": "granted", "identifier": UK_PHONE, **SOFT,
         "legal_basis": "Soft_Opt_In"},
        event_time=T0,
    )
    assert (st.kind, st.legal_basis, st.expires_at) == ("implied", "soft_opt_in", None)
    assert st.proof == {"order_id": "#1042", "opt_out_offered": True}


def test_e3_soft_opt_in_from_a_negotiation_and_with_an_expiry() -> None:
    st = parse_statement(
        {"channel": "email", "status": "granted", "identifier": EMAIL, "kind": "implied",
         "legal_basis": "soft_opt_in", "inquiry_id": "quote-7", "opt_out_offered": True,
         "basis": "inquiry"},
        event_time=T0,
    )
    # No statutory term, but a shop may give it one ("not indefinite", the ICO says).
    assert st.expires_at == T0 + timedelta(days=182)
    assert st.proof == {"inquiry_id": "quote-7", "opt_out_offered": True, "basis": "inquiry"}


@pytest.mark.parametrize(
    ("props", "field", "words"),
    [
        # An implied grant for an EU/UK number without the soft opt-in.
        ({"channel": "sms", "identifier": UK_PHONE, "kind": "implied", "basis": "purchase"},
         "legal_basis", "+447400123456 is an EU/UK number"),
        ({"channel": "whatsapp", "identifier": "+33612345678", "kind": "implied",
          "legal_basis": "casl_implied", "expires_at": "2027-01-01T00:00:00Z"},
         "legal_basis", "only the soft opt-in"),
        # The soft opt-in without its evidence.
        ({"legal_basis": "soft_opt_in", "opt_out_offered": True}, "order_id", "order_id"),
        ({"legal_basis": "soft_opt_in", "order_id": "#1"}, "opt_out_offered", "offered"),
        ({"legal_basis": "soft_opt_in", "order_id": "#1", "opt_out_offered": False},
         "opt_out_offered", "does not apply"),
        ({"legal_basis": "soft_opt_in", "order_id": "#1", "opt_out_offered": "yes"},
         "opt_out_offered", "true or false"),
        ({"legal_basis": "soft_opt_in", "order_id": {"id": 1}, "opt_out_offered": True},
         "order_id", "string"),
        ({**SOFT, "kind": "express"}, "kind", "implied"),
    ],
)
def test_e3_bad_statements_name_the_property(
    props: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ConsentError) as exc:
        parse_statement({"channel": "email", "status": "granted", "identifier": EMAIL} | props,
                        event_time=T0)
    assert exc.value.field == field
    assert words in exc.value.message


def test_e3_what_the_rule_does_not_govern_is_accepted_for_an_eu_uk_number() -> None:
    implied = {"kind": "implied", "basis": "purchase", "identifier": UK_PHONE}
    for props in (
        {"channel": "sms", **implied, "purpose": "transactional"},  # not marketing
        {"channel": "phone", **implied},  # live calls: PECR reg. 21, opt-out
        {"channel": "sms", "status": "withdrawn", "kind": "implied", "identifier": UK_PHONE},
        {"channel": "sms", "identifier": UK_PHONE},  # express consent
        {"channel": "sms", "status": "withdrawn", "legal_basis": "soft_opt_in",
         "identifier": UK_PHONE},  # an opt-out needs no evidence of a sale
    ):
        parse_statement({"status": "granted"} | props, event_time=T0)


# --- through the pipeline: where the profile is placed -----------------------------------


PLACINGS: dict[str, Callable[[], list[CanonicalEvent]]] = {
    "an Age Verified in GB": lambda: [signup(), age("a", 1, "GB")],
    "an Age Verified in France": lambda: [signup(), age("a", 1, "FR")],
    "the address trait, with no age records": lambda: [signup(address={"country": "Germany"})],
}


@pytest.mark.parametrize("placed_by", list(PLACINGS))
def test_e3_implied_grant_for_a_profile_placed_in_the_eu_uk_is_refused_and_nothing_is_stored(
    engine: Engine, placed_by: str
) -> None:
    run(engine, *PLACINGS[placed_by]())
    run(engine, consent("c", 5, kind="implied", basis="purchase"))
    (issue,) = issues(engine, "c")
    assert issue["field"] == "properties.legal_basis", placed_by
    assert "soft_opt_in" in issue["error"] and issue["consent"] == "not recorded"
    assert ledger(engine) == []
    with engine.connect() as conn:
        assert conn.scalar(select(consent_state.c.profile_id)) is None
        assert verify_ledger(conn) == (0, [])


def test_e3_an_age_check_in_the_same_batch_places_the_profile(engine: Engine) -> None:
    run(engine, signup(), age("a", 1, "GB"), consent("c", 5, kind="implied", basis="purchase"))
    assert issues(engine, "c")[0]["field"] == "properties.legal_basis"
    assert ledger(engine) == []


def test_e3_the_default_jurisdiction_places_a_profile_nothing_else_places(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUESTLIST_DEFAULT_JURISDICTION", "GB")
    get_settings.cache_clear()
    run(engine, signup(), consent("c", 5, kind="implied", basis="purchase"))
    assert issues(engine, "c")[0]["field"] == "properties.legal_basis"
    assert ledger(engine) == []


def test_e3_soft_opt_in_for_a_uk_customer_is_recorded_and_admitted(engine: Engine) -> None:
    run(engine, signup(), age("a", 1, "GB"), consent("c", 5, **SOFT))
    assert issues(engine, "c") is None
    (record,) = ledger(engine)
    assert (record.kind, record.legal_basis, record.expires_at) == ("implied", "soft_opt_in", None)
    assert record.proof == {"order_id": "#1042", "opt_out_offered": True}
    assert decision(engine) == []


def test_e3_express_consent_in_the_uk_is_unaffected(engine: Engine) -> None:
    run(engine, signup(), age("a", 1, "GB"), consent("c", 5, legal_basis="gdpr_consent"))
    assert decision(engine) == []


def test_e3_unknown_place_records_the_grant_and_the_guard_asks_again(engine: Engine) -> None:
    """Not known to be EU/UK: the CASL-style grant is recorded. Once an age check places
    the person in the UK, the guard no longer counts it (defence in depth)."""
    run(engine, signup(), consent("c", 5, kind="implied", basis="purchase"))
    assert issues(engine, "c") is None and len(ledger(engine)) == 1
    run(engine, age("a", 10, "US"))
    assert decision(engine) == []
    run(engine, age("b", 20, "GB"))  # same level, same date: the later record places
    assert decision(engine) == ["implied_consent_without_basis"]
    run(engine, consent("d", 30, **SOFT))  # the shop records the soft opt-in it has
    assert decision(engine) == []


@pytest.mark.parametrize("minutes", [10, 5])  # later, and at the same time (C-3: a tie)
def test_e3_soft_opt_in_ends_on_opt_out(engine: Engine, minutes: int) -> None:  # C-3
    run(engine, signup(), age("a", 1, "GB"), consent("c", 5, **SOFT))
    run(engine, consent("w", minutes, status="withdrawn", keyword="unsubscribe"))
    with engine.connect() as conn:
        assert channel_status(current_consent(conn, ann(engine)), "email") == "withdrawn"
    assert decision(engine) == ["consent_withdrawn"]


def test_e3_a_late_older_soft_opt_in_changes_nothing_newer(engine: Engine) -> None:  # C-3
    run(engine, signup(), age("a", 1, "GB"), consent("w", 10, status="withdrawn"))
    run(engine, consent("c", 5, **SOFT))  # arrives late, dated before the opt-out
    assert len(ledger(engine)) == 2
    assert decision(engine) == ["consent_withdrawn"]


def test_e3_an_sms_grant_for_a_uk_number_is_refused_whoever_holds_it(engine: Engine) -> None:
    run(engine, signup(phone=UK_PHONE), age("a", 1, "US"))
    run(engine, consent("c", 5, channel="sms", identifier=UK_PHONE, kind="implied",
                        basis="purchase"))
    assert issues(engine, "c")[0]["field"] == "properties.legal_basis"
    assert ledger(engine) == []
