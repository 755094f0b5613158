"""The guard (compliance A-6 with A-1..A-5, C-3, C-4, C-6, C-7, E-3, SMS-6a, P-5), on both
databases.

The property test at the end generates event sequences — consent grants and
withdrawals at any event time (some implied, with or without the soft opt-in; some
SMS grants stating their age gate), sale/sharing statements and Global Privacy Control
signals, duplicates by messageId, late arrivals, `Age Verified` around the thresholds at
every level and in several jurisdictions (dated and undated), birthday traits,
addresses, aliases that merge profiles — processes them through the pipeline in random
batches, and compares every decision with an oracle written here from the events.
"""

from __future__ import annotations

import calendar
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from guestlist.age import VerificationLevel, default_policy
from guestlist.age.policy import RuleStatus, RuleType
from guestlist.canonical import CanonicalEvent
from guestlist.guard import (
    AgeCheck,
    ConsentFact,
    ProfileFacts,
    Reason,
    Restriction,
    admitted_profiles,
    guard,
    load_facts,
)
from guestlist.pipeline import process_events
from guestlist.settings import get_settings
from guestlist.store.tables import identifiers, profiles
from tests.conftest import wipe

L = VerificationLevel
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PHONE = "+14155550100"
OTHER_PHONE = "+14155550199"
EMAIL = "ann@example.com"


@pytest.fixture(autouse=True)
def no_default_jurisdiction() -> Iterator[None]:
    saved = os.environ.pop("GUESTLIST_DEFAULT_JURISDICTION", None)
    get_settings.cache_clear()
    yield
    if saved is not None:
        os.environ["GUESTLIST_DEFAULT_JURISDICTION"] = saved
    get_settings.cache_clear()


def sms_grant(identifier: str = PHONE, **fields: Any) -> ConsentFact:
    """SMS marketing granted through a form with a date-of-birth age gate (SMS-6a)."""
    return ConsentFact("sms", "marketing", identifier, "granted", **({"age_gate": L.DOB_PROVIDED}
                                                                     | fields))


def facts(**overrides: Any) -> ProfileFacts:
    """An adult in Texas, ID-checked, who granted SMS marketing for the phone held,
    behind an age gate."""
    base: dict[str, Any] = {
        "profile_id": 1,
        "dob": date(1990, 1, 18),
        "level": L.ID_DOCUMENT,
        "jurisdiction": "US-TX",
        "consents": (sms_grant(),),
        "identifiers": frozenset({("phone", PHONE)}),
    }
    return ProfileFacts(**(base | overrides))


SMS_ALCOHOL = Restriction("alcohol", channel="sms")


def reasons(f: ProfileFacts, r: Restriction = SMS_ALCOHOL, now: datetime = NOW) -> list[str]:
    decision = guard(f, r, now)
    assert decision.admitted is (not decision.reasons)
    return decision.reasons


# --- the restriction -----------------------------------------------------------------


def test_restriction_defaults_to_the_categorys_level() -> None:
    assert SMS_ALCOHOL.required_level is L.DOB_PROVIDED
    assert Restriction("Alcohol.Spirits", channel="sms").required_level is L.DOB_PROVIDED
    assert Restriction("vape", channel="email").required_level is L.DATABASE_CHECK
    assert Restriction("alcohol", channel="sms", required_level="id_document").required_level is (
        L.ID_DOCUMENT
    )
    assert Restriction("alcohol", channel="sms").purpose == "marketing"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("fireworks",), {"channel": "sms"}),  # no level for an unknown category
        (("alcohol",), {"channel": "fax"}),
        (("alcohol",), {"channel": "sms", "purpose": "spam"}),
        (("alcohol",), {"channel": "sms", "required_level": "id_scan"}),
    ],
)
def test_restriction_refuses_unknown_names(args: tuple[str], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Restriction(*args, **kwargs)


# --- one decision --------------------------------------------------------------------


def test_an_adult_verified_and_consented_is_admitted_with_the_consented_number() -> None:
    decision = guard(facts(), SMS_ALCOHOL, NOW)
    assert (decision.admitted, decision.reasons, decision.identifiers) == (True, [], (PHONE,))


def test_a_minor_is_not_admitted(

) -> None:
    assert reasons(facts(dob=date(2005, 3, 2))) == ["under_age"]  # 21 tomorrow in Texas
    assert reasons(facts(dob=date(2005, 3, 1))) == []


def test_the_level_must_reach_the_required_one(

) -> None:
    assert reasons(facts(level=L.SELF_DECLARED)) == ["insufficient_level"]
    tobacco = Restriction("tobacco", channel="sms")  # database_check (PACT Act)
    assert reasons(facts(level=L.DOB_PROVIDED), tobacco) == ["insufficient_level"]
    assert reasons(facts(level=L.DATABASE_CHECK), tobacco) == []
    strict = Restriction("alcohol", channel="sms", required_level=L.IN_PERSON_ID)
    assert reasons(facts(), strict) == ["insufficient_level"]


def test_every_failing_reason_is_listed() -> None:
    f = facts(dob=date(2010, 1, 1), level=L.SELF_DECLARED, consents=())
    assert reasons(f) == ["under_age", "insufficient_level", "consent_unknown"]


@pytest.mark.parametrize(
    ("overrides", "category", "expected"),
    [
        ({"jurisdiction": None}, "alcohol", ["unknown_jurisdiction"]),
        ({"jurisdiction": None, "dob": None, "level": None}, "alcohol",
         ["unknown_dob", "insufficient_level"]),  # no age records at all
        ({"jurisdiction": "NZ"}, "alcohol", ["unknown_jurisdiction_rule"]),
        ({"jurisdiction": "??"}, "alcohol", ["unknown_jurisdiction"]),
        ({"jurisdiction": "GB"}, "cannabis", ["prohibited"]),  # "not sold" is a row
        ({"jurisdiction": "US-TX", "level": L.DATABASE_CHECK}, "cannabis", ["prohibited"]),
        ({"jurisdiction": "US-CA", "level": L.DATABASE_CHECK}, "cannabis", []),
        ({"dob": None}, "alcohol", ["unknown_dob"]),
        ({"dob": date(2026, 3, 5)}, "alcohol", ["future_dob"]),
        # a sub-category falls back to its parent; DE sells beer at 16, spirits at 18.
        ({"jurisdiction": "DE", "dob": date(2009, 1, 1)}, "alcohol.beer_wine", []),
        ({"jurisdiction": "DE", "dob": date(2009, 1, 1)}, "alcohol.spirits", ["under_age"]),
        ({"jurisdiction": "DE", "dob": date(2009, 1, 1)}, "alcohol", ["under_age"]),
        # calendar-year rule, 19 in South Korea from 1 January of the year.
        ({"jurisdiction": "KR", "dob": date(2007, 12, 31)}, "alcohol", []),
        ({"jurisdiction": "KR", "dob": date(2008, 1, 1)}, "alcohol", ["under_age"]),
    ],
)
def test_age_reasons(overrides: dict[str, Any], category: str, expected: list[str]) -> None:
    assert reasons(facts(**overrides), Restriction(category, channel="sms")) == expected


def test_age_is_counted_on_the_local_date() -> None:
    f = facts(jurisdiction="JP", dob=date(2006, 3, 2))  # 20 on 2 March in Tokyo
    assert reasons(f, now=datetime(2026, 3, 1, 14, 59, tzinfo=UTC)) == ["under_age"]
    assert reasons(f, now=datetime(2026, 3, 1, 15, 0, tzinfo=UTC)) == []


def test_leap_day_birthdays_come_of_age_on_1_march() -> None:
    f = facts(dob=date(2004, 2, 29), jurisdiction="US-CA")
    assert reasons(f, now=datetime(2025, 3, 1, 7, 59, tzinfo=UTC)) == ["under_age"]  # 28 Feb PST
    assert reasons(f, now=datetime(2025, 3, 1, 8, 0, tzinfo=UTC)) == []


@pytest.mark.parametrize(
    ("consents", "held", "expected"),
    [
        ((), {("phone", PHONE)}, "consent_unknown"),  # C-4
        ((ConsentFact("sms", "marketing", PHONE, "withdrawn"),), {("phone", PHONE)},
         "consent_withdrawn"),
        ((ConsentFact("sms", "marketing", PHONE, "denied"),), {("phone", PHONE)},
         "consent_denied"),
        ((ConsentFact("sms", "marketing", PHONE, "pending"),), {("phone", PHONE)},
         "consent_pending"),
        ((ConsentFact("sms", "marketing", PHONE, "granted", NOW),), {("phone", PHONE)},
         "consent_expired"),  # C-7: expired at `now` exactly
        # C-6: consent for a number the profile does not hold is not its consent.
        ((ConsentFact("sms", "marketing", PHONE, "granted"),), {("phone", OTHER_PHONE)},
         "consent_unknown"),
        # Another channel or purpose is not this one.
        ((ConsentFact("whatsapp", "marketing", PHONE, "granted"),
          ConsentFact("sms", "transactional", PHONE, "granted")), {("phone", PHONE)},
         "consent_unknown"),
        # Erased records keep no identifier: they count for nobody.
        ((ConsentFact("sms", "marketing", None, "granted"),), {("phone", PHONE)},
         "consent_unknown"),
    ],
)
def test_consent_reasons(
    consents: tuple[ConsentFact, ...], held: set[tuple[str, str]], expected: str
) -> None:
    assert reasons(facts(consents=consents, identifiers=frozenset(held))) == [expected]


def test_one_consented_number_admits_and_only_it_is_named() -> None:  # C-6
    f = facts(
        consents=(
            ConsentFact("sms", "marketing", PHONE, "withdrawn"),
            sms_grant(OTHER_PHONE, expires_at=NOW + timedelta(days=1)),
        ),
        identifiers=frozenset({("phone", PHONE), ("phone", OTHER_PHONE)}),
    )
    assert guard(f, SMS_ALCOHOL, NOW).identifiers == (OTHER_PHONE,)


def test_postal_consent_is_held_by_its_own_record() -> None:
    f = facts(consents=(ConsentFact("postal", "marketing", "1 Main St, Austin", "granted"),))
    assert reasons(f, Restriction("alcohol", channel="postal")) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"merged_into": 7}, "merged"),
        ({"erased": True}, "erased"),  # P-2
        ({"exists": False}, "not_found"),
    ],
)
def test_only_live_profiles_are_admitted(overrides: dict[str, Any], expected: str) -> None:
    assert reasons(facts(**overrides)) == [expected]


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        guard(facts(), SMS_ALCOHOL, datetime(2026, 3, 1, 12))


def test_reasons_are_plain_strings() -> None:
    assert Reason.UNDER_AGE == "under_age"
    assert {r.value for r in Reason} >= {"under_age", "insufficient_level", "consent_unknown"}
    assert Reason.SALE_SHARING_OPTED_OUT == "sale_sharing_opted_out"
    assert Reason.IMPLIED_CONSENT_WITHOUT_BASIS == "implied_consent_without_basis"
    assert Reason.SMS_CONSENT_NOT_AGE_GATED == "sms_consent_not_age_gated"


# --- sharing destinations (P-5) ------------------------------------------------------

SMS_SHARING = Restriction("alcohol", channel="sms", sharing=True)
T = NOW - timedelta(days=3)


def _sharing(status: str, channel: str = "browser", identifier: str = "anonymous_id:a1",
             at: datetime | None = T, expires: datetime | None = None) -> ConsentFact:
    return ConsentFact(channel, "sale_sharing", identifier, status, expires, at)


def test_a_restriction_is_not_a_sharing_destination_unless_marked() -> None:  # P-5
    assert SMS_ALCOHOL.sharing is False
    assert SMS_SHARING.sharing is True and SMS_SHARING.purpose == "marketing"


@pytest.mark.parametrize(
    ("sharing", "refused"),
    [
        ((), False),  # CCPA is opt-out: no record is not an opt-out (unlike C-4)
        ((_sharing("withdrawn"),), True),  # a browser's GPC signal
        ((_sharing("denied", "email", EMAIL),), True),
        ((_sharing("withdrawn", "sms", PHONE),), True),  # an SMS STOP
        ((_sharing("granted", "sms", PHONE),), False),
        ((_sharing("pending", "sms", PHONE),), False),
        # An opt-out counts whatever identifier it was recorded for, held or not.
        ((_sharing("withdrawn", "sms", OTHER_PHONE),), True),
        ((_sharing("withdrawn", identifier=None),), True),  # erased address: still out
        # A later grant for a held identifier lifts it (C-3)…
        ((_sharing("withdrawn"), _sharing("granted", "sms", PHONE, T + timedelta(hours=1))),
         False),
        # …not one at the same time (a withdrawal wins a tie), nor an earlier one…
        ((_sharing("withdrawn"), _sharing("granted", "sms", PHONE, T)), True),
        ((_sharing("withdrawn"), _sharing("granted", "sms", PHONE, T - timedelta(days=1))),
         True),
        # …nor one for a number the profile does not hold (C-6), nor an expired one (C-7),
        ((_sharing("withdrawn"), _sharing("granted", "sms", OTHER_PHONE, NOW)), True),
        ((_sharing("withdrawn"), _sharing("granted", "sms", PHONE, NOW - timedelta(days=1),
                                          NOW)), True),
        # …nor a pending one; and the latest opt-out is the one to beat.
        ((_sharing("withdrawn"), _sharing("pending", "sms", PHONE, NOW)), True),
        ((_sharing("withdrawn"), _sharing("granted", "sms", PHONE, T + timedelta(hours=1)),
          _sharing("denied", "email", EMAIL, T + timedelta(hours=2))), True),
        # An undated opt-out: nothing is later.
        ((_sharing("withdrawn", at=None), _sharing("granted", "sms", PHONE, NOW)), True),
    ],
)
def test_a_sharing_destination_refuses_whoever_opted_out_of_sale_and_sharing(
    sharing: tuple[ConsentFact, ...], refused: bool
) -> None:  # P-5
    f = facts(
        consents=(sms_grant(), *sharing),
        identifiers=frozenset({("phone", PHONE), ("email", EMAIL)}),
    )
    assert reasons(f, SMS_SHARING) == (["sale_sharing_opted_out"] if refused else [])
    assert reasons(f) == []  # a destination that does not share never asks


def test_the_sale_sharing_reason_comes_last_with_the_others() -> None:  # P-5
    f = facts(consents=(_sharing("withdrawn"),), level=L.SELF_DECLARED)
    assert reasons(f, SMS_SHARING) == [
        "insufficient_level", "consent_unknown", "sale_sharing_opted_out"
    ]


# --- E-3: implied consent for EU/UK recipients ----------------------------------------

EMAIL_ALCOHOL = Restriction("alcohol", channel="email")
UK_PHONE = "+447400123456"


def _implied(channel: str = "email", identifier: str = EMAIL, **fields: Any) -> ConsentFact:
    return ConsentFact(channel, "marketing", identifier, "granted", kind="implied", **fields)


@pytest.mark.parametrize(
    ("jurisdiction", "legal_basis", "expected"),
    [
        ("GB", None, ["implied_consent_without_basis"]),
        ("DE", "casl_implied", ["implied_consent_without_basis"]),
        ("FR", "soft_opt_in", []),
        ("US-TX", None, []),  # C-7 (CASL-style) implied consent, not an EU/UK recipient
        ("CA-QC", "casl_implied", []),
    ],
)
def test_e3_implied_consent_for_an_eu_uk_recipient_counts_only_on_the_soft_opt_in(
    jurisdiction: str, legal_basis: str | None, expected: list[str]
) -> None:
    f = facts(jurisdiction=jurisdiction, consents=(_implied(legal_basis=legal_basis),),
              identifiers=frozenset({("email", EMAIL)}))
    assert reasons(f, EMAIL_ALCOHOL) == expected


def test_e3_an_eu_uk_number_needs_the_soft_opt_in_wherever_the_profile_is() -> None:
    held = frozenset({("phone", UK_PHONE)})
    loose = _implied("sms", UK_PHONE, age_gate=L.DOB_PROVIDED)
    assert reasons(facts(consents=(loose,), identifiers=held)) == [
        "implied_consent_without_basis"
    ]
    soft = _implied("sms", UK_PHONE, age_gate=L.DOB_PROVIDED, legal_basis="soft_opt_in")
    assert reasons(facts(consents=(soft,), identifiers=held)) == []


def test_e3_governs_marketing_by_electronic_message_only() -> None:
    gb = {"jurisdiction": "GB"}
    postal = ConsentFact("postal", "marketing", "1 High St, Leeds", "granted", kind="implied")
    assert reasons(facts(**gb, consents=(postal,)), Restriction("alcohol", channel="postal")) == []
    transactional = ConsentFact("email", "transactional", EMAIL, "granted", kind="implied")
    assert reasons(
        facts(**gb, consents=(transactional,), identifiers=frozenset({("email", EMAIL)})),
        Restriction("alcohol", channel="email", purpose="transactional"),
    ) == []


def test_e3_express_consent_and_other_addresses_are_unaffected() -> None:
    f = facts(
        jurisdiction="GB",
        consents=(_implied(), ConsentFact("email", "marketing", "ann@work.example", "granted")),
        identifiers=frozenset({("email", EMAIL), ("email", "ann@work.example")}),
    )
    assert guard(f, EMAIL_ALCOHOL, NOW).identifiers == ("ann@work.example",)


# --- SMS-6a: SMS consent behind an age gate ------------------------------------------

GRANTED_AT = NOW - timedelta(days=30)


def _checked(days_before_grant: float, level: VerificationLevel = L.ID_DOCUMENT,
             dob: date | None = date(1990, 1, 18)) -> AgeCheck:
    return AgeCheck(GRANTED_AT - timedelta(days=days_before_grant), level, dob)


def _ungated(identifier: str = PHONE) -> ConsentFact:
    return ConsentFact("sms", "marketing", identifier, "granted", event_time=GRANTED_AT)


@pytest.mark.parametrize(
    ("checks", "gated"),
    [
        ((), False),  # nothing on file
        ((_checked(1),), True),
        ((_checked(0),), True),  # the same moment: the signup form that asked both
        ((_checked(-1),), False),  # checked after the grant
        ((_checked(-1), _checked(2, L.DOB_PROVIDED)), True),
        ((_checked(1, L.SELF_DECLARED),), False),  # a checkbox is not an SMS age gate
        ((_checked(1, L.SELF_DECLARED, None),), False),
        ((_checked(1, L.DATABASE_CHECK, None),), True),  # a provider's undated pass
        # A-5 as of the grant: the dated check decides, and it showed a minor.
        ((_checked(1, L.DATABASE_CHECK, None), _checked(1, L.DOB_PROVIDED, date(2006, 1, 1))),
         False),
        ((_checked(1, L.DOB_PROVIDED, date(2006, 1, 1)), _checked(1, L.ID_DOCUMENT)), True),
    ],
)
def test_sms6a_an_sms_grant_counts_only_behind_an_age_check_passed_before_it(
    checks: tuple[AgeCheck, ...], gated: bool
) -> None:
    f = facts(consents=(_ungated(),), age_checks=checks)
    assert reasons(f) == ([] if gated else ["sms_consent_not_age_gated"])


def test_sms6a_the_gate_is_judged_for_the_category_on_the_grants_local_date() -> None:
    # 21 on 2026-01-31 in Texas (Mountain time for El Paso): 20 when the grant was given.
    young = _checked(10, L.ID_DOCUMENT, date(2005, 1, 31))
    f = facts(dob=date(2005, 1, 31), consents=(_ungated(),), age_checks=(young,))
    assert reasons(f) == ["sms_consent_not_age_gated"]  # no 21+ gate let them in
    # The same check gated a grant for beer and wine in Germany (16).
    german = facts(jurisdiction="DE", dob=date(2005, 1, 31), consents=(_ungated(),),
                   age_checks=(young,))
    assert reasons(german, Restriction("alcohol.beer_wine", channel="sms")) == []


def test_sms6a_a_grant_of_unknown_time_shows_no_check_before_it() -> None:
    f = facts(consents=(ConsentFact("sms", "marketing", PHONE, "granted"),),
              age_checks=(_checked(1),))
    assert reasons(f) == ["sms_consent_not_age_gated"]


def test_sms6a_only_sms_needs_the_gate_and_only_gated_numbers_are_sent_to() -> None:
    whatsapp = ConsentFact("whatsapp", "marketing", PHONE, "granted", event_time=GRANTED_AT)
    assert reasons(facts(consents=(whatsapp,)), Restriction("alcohol", channel="whatsapp")) == []
    f = facts(
        consents=(_ungated(OTHER_PHONE), sms_grant()),
        identifiers=frozenset({("phone", PHONE), ("phone", OTHER_PHONE)}),
    )
    assert guard(f, SMS_ALCOHOL, NOW).identifiers == (PHONE,)


def test_a_grant_that_does_not_count_is_the_consent_reason() -> None:  # E-3, SMS-6a
    f = facts(
        jurisdiction="GB",
        consents=(ConsentFact("sms", "marketing", OTHER_PHONE, "withdrawn"),
                  _implied("sms", PHONE, event_time=GRANTED_AT)),
        identifiers=frozenset({("phone", PHONE), ("phone", OTHER_PHONE)}),
    )
    assert reasons(f) == ["implied_consent_without_basis"]  # E-3 first: no consent at all
    f = facts(consents=(ConsentFact("sms", "marketing", OTHER_PHONE, "withdrawn"), _ungated()),
              identifiers=frozenset({("phone", PHONE), ("phone", OTHER_PHONE)}))
    assert reasons(f) == ["sms_consent_not_age_gated"]


# --- facts from the database ---------------------------------------------------------


def _event(kind: str, message_id: str, user: str, **fields: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type=kind,
        message_id=message_id,
        timestamp=fields.pop("at", NOW - timedelta(days=1)),
        received_at=NOW,
        source_id=1,
        user_id=user,
        **fields,
    )


def _live_profile(engine: Engine, user: str) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "user_id", identifiers.c.key == user
            )
        )
    assert pid is not None
    return int(pid)


def test_load_facts_and_admitted_profiles(engine: Engine) -> None:
    batch = [
        _event("identify", "i1", "adult", traits={"phone": PHONE, "email": EMAIL}),
        _event("track", "a1", "adult", name="Age Verified",
               properties={"birthday": "1990-01-18", "level": "id_document", "country": "US",
                           "region": "US-TX"}),
        _event("track", "c1", "adult", name="Consent Updated",
               properties={"channel": "sms", "status": "granted", "identifier": PHONE}),
        _event("identify", "i2", "minor", traits={"phone": OTHER_PHONE, "birthday": "2010-05-05",
                                                  "address": {"country": "US", "state": "TX"}}),
        _event("track", "c2", "minor", name="Consent Updated",
               properties={"channel": "sms", "status": "granted", "identifier": OTHER_PHONE}),
    ]
    with engine.begin() as conn:
        process_events(conn, batch)
    adult, minor = _live_profile(engine, "adult"), _live_profile(engine, "minor")
    with engine.connect() as conn:
        loaded = load_facts(conn, [adult, minor, 999_999])
        assert admitted_profiles(conn, [adult, minor, 999_999], SMS_ALCOHOL, NOW) == {adult}
        assert admitted_profiles(
            conn, [adult, minor], Restriction("alcohol", channel="email"), NOW
        ) == set()  # C-4: email consent never given
    assert loaded[adult].identifiers == {("phone", PHONE), ("email", EMAIL)}
    assert (loaded[adult].dob, loaded[adult].level, loaded[adult].jurisdiction) == (
        date(1990, 1, 18),
        L.ID_DOCUMENT,
        "US-TX",
    )
    # The minor's own date of birth was the check at their grant: it gated nothing (SMS-6a).
    assert guard(loaded[minor], SMS_ALCOHOL, NOW).reasons == [
        "under_age", "sms_consent_not_age_gated"
    ]
    assert loaded[999_999].exists is False
    with engine.begin() as conn:  # P-2: an erased profile's row stays as a tombstone
        conn.execute(update(profiles).where(profiles.c.id == adult).values(erased_at=NOW))
    with engine.connect() as conn:
        assert guard(load_facts(conn, [adult])[adult], SMS_ALCOHOL, NOW).reasons == ["erased"]


def test_a_merged_away_profile_is_never_admitted(engine: Engine) -> None:
    batch = [
        _event("identify", "i1", "u1", traits={"phone": PHONE}),
        _event("track", "c1", "u1", name="Consent Updated",
               properties={"channel": "sms", "status": "granted", "identifier": PHONE}),
        _event("track", "a1", "u2", name="Age Verified",
               properties={"birthday": "1990-01-18", "level": "id_document", "country": "US"}),
    ]
    with engine.begin() as conn:
        process_events(conn, batch)
    first = {_live_profile(engine, "u1"), _live_profile(engine, "u2")}
    with engine.connect() as conn:
        assert admitted_profiles(conn, first, SMS_ALCOHOL, NOW) == set()  # neither alone
    with engine.begin() as conn:
        process_events(conn, [_event("alias", "m", "u1", previous_id="u2")])
    survivor = _live_profile(engine, "u1")
    with engine.connect() as conn:
        assert admitted_profiles(conn, first, SMS_ALCOHOL, NOW) == {survivor}
        (gone,) = first - {survivor}
        assert guard(load_facts(conn, [gone])[gone], SMS_ALCOHOL, NOW).reasons[0] == "merged"


def test_a_gpc_opt_out_stops_sharing_destinations_at_once_and_nothing_else(
    engine: Engine,
) -> None:  # P-5: "within 15 business days at most (guestlist: at once)"
    batch = [
        _event("identify", "i1", "ann", traits={"phone": PHONE, "email": EMAIL}),
        _event("track", "a1", "ann", name="Age Verified",
               properties={"birthday": "1990-01-18", "level": "id_document", "country": "US",
                           "region": "US-TX"}),
        _event("track", "c1", "ann", name="Consent Updated",
               properties={"channel": "email", "status": "granted", "identifier": EMAIL}),
    ]
    with engine.begin() as conn:
        process_events(conn, batch)
    ann = _live_profile(engine, "ann")
    audience = Restriction("alcohol", channel="email", sharing=True)  # custom audience
    newsletter = Restriction("alcohol", channel="email")  # the shop's own email
    with engine.connect() as conn:
        assert admitted_profiles(conn, [ann], audience, NOW) == {ann}
    with engine.begin() as conn:  # the person browses with GPC on
        process_events(conn, [_event("page", "p1", "ann", context={"gpc": True})])
    with engine.connect() as conn:  # read at send time: no job or sync run in between
        assert admitted_profiles(conn, [ann], newsletter, NOW) == {ann}
        assert guard(load_facts(conn, [ann])[ann], audience, NOW).reasons == [
            "sale_sharing_opted_out"
        ]


# === the property test ================================================================
#
# Three users, each with a phone and an email of their own; anything may be said about
# any of them in any order. The oracle reads the generated events only: it groups users
# joined by aliases, takes each group's statements in processing order, and decides
# with its own arithmetic, reading minimum ages and zones from the age table (data).

USERS = ("u1", "u2", "u3")
PHONES = {"u1": "+14155550101", "u2": "+14155550102", "u3": "+14155550103"}
EMAILS = {"u1": "ann@example.com", "u2": "bob@example.com", "u3": "cy@example.com"}
# Grants for these are implied consent that expires (C-7) some hours before or after `now`:
# at an even minute on the soft opt-in, with its evidence; at an odd one without it,
# which is not consent for someone placed in the EU/UK (E-3).
EXPIRING = {PHONES["u2"], EMAILS["u3"]}
EU_UK_PLACES = {"GB", "DE"}  # of the jurisdictions generated below (E-3)
T0 = datetime(2026, 2, 27, tzinfo=UTC)
LIFETIME = timedelta(days=2, hours=6, minutes=15)
NOWS = (
    datetime(2026, 2, 28, 23, 30, tzinfo=UTC),  # 28 Feb everywhere west of UTC+1
    datetime(2026, 3, 1, 6, 30, tzinfo=UTC),  # 28 Feb in Hawaii, 1 Mar in Europe and Asia
    datetime(2026, 3, 1, 15, 30, tzinfo=UTC),  # 1 Mar in Hawaii too; 2 Mar in Tokyo
)
LEVELS = tuple(VerificationLevel)
# Age Verified places: (country, region, the jurisdiction stated, or "bad" when refused).
PLACES: tuple[tuple[str | None, str | None, str | None], ...] = (
    ("US", None, "US"),
    (None, "US-CA", "US-CA"),
    ("CA", "QC", "CA-QC"),
    ("CA", "ON", "CA-ON"),
    ("KR", None, "KR"),
    ("JP", None, "JP"),
    ("DE", None, "DE"),
    ("GB", None, "GB"),
    (None, None, None),
    ("NZ", None, "bad"),
    ("US", "ZZ", "bad"),
    ("US", "CA-QC", "bad"),
)
# Addresses on identify calls: (value, the record's jurisdiction when a birthday rides
# with it, and where the address trait puts the profile for each default).
ADDRESSES: tuple[tuple[dict[str, str], str | None, dict[str | None, Any]], ...] = (
    ({"country": "US", "state": "TX"}, "US-TX", {None: "US-TX", "US-TX": "US-TX", "GB": "US-TX"}),
    ({"country": "Canada", "state": "Quebec"}, "CA-QC",
     {None: "CA-QC", "US-TX": "CA-QC", "GB": "CA-QC"}),
    ({"country": "gb"}, "GB", {None: "GB", "US-TX": "GB", "GB": "GB"}),
    ({"country": "Narnia"}, None, {None: None, "US-TX": None, "GB": None}),  # placed: unknown
    ({"state": "CA"}, None, {None: "default", "US-TX": "US-CA", "GB": "GB-CA"}),
    ({"city": "Austin"}, None, {None: "default", "US-TX": "default", "GB": "default"}),
)
DEFAULTS = (None, "US-TX", "GB")
RESTRICTIONS = (
    *(Restriction(c, channel=ch) for c in ("alcohol", "alcohol.spirits", "cannabis", "tobacco")
      for ch in ("sms", "email")),
    Restriction("alcohol", channel="sms", required_level=L.ID_DOCUMENT),
    Restriction("alcohol", channel="sms", purpose="transactional"),
    # Sharing destinations (P-5): marketing consent and no opt-out of sale/sharing.
    Restriction("alcohol", channel="sms", sharing=True),
    Restriction("alcohol", channel="email", sharing=True),
    Restriction("tobacco", channel="email", sharing=True),
)
# GPC signals on a page call: (context, whether it is one). Only `true` and "1" are.
GPC_CONTEXTS: tuple[tuple[dict[str, Any], bool], ...] = (
    ({"gpc": True}, True),
    ({"globalPrivacyControl": True}, True),
    ({"gpc": "1"}, True),
    ({"gpc": False}, False),
    ({"globalPrivacyControl": "0"}, False),
    ({"gpc": 1}, False),
)
TIE_RANK = {"granted": 0, "pending": 1, "denied": 2, "withdrawn": 3}  # C-3


def _dob() -> st.SearchStrategy[date]:
    near = st.builds(
        lambda years, days: date(2026 - years, 3, 1) + timedelta(days=days),
        st.integers(15, 22),
        st.integers(-2, 1),
    )
    adult = st.builds(date, st.integers(1960, 2000), st.integers(1, 12), st.integers(1, 28))
    leap = st.sampled_from([date(2004, 2, 29), date(2008, 2, 29)])
    return st.one_of(near, near, adult, leap)


@dataclass
class Ev:
    """One generated call; `valid` is the oracle's knowledge of whether it is refused."""

    kind: str  # identify | consent | age | alias | gpc
    user: str
    minutes: int
    phone: bool = False
    email: bool = False
    address: int | None = None  # index into ADDRESSES
    birthday: str | None = None
    dob: date | None = None  # the date `birthday` states, when valid
    channel: str = "sms"
    purpose: str = "marketing"
    status: str = "granted"
    identifier: str = ""
    level: str = "dob_provided"
    place: int = 0  # index into PLACES
    signal: int = 0  # index into GPC_CONTEXTS
    other: str = ""  # alias: previousId
    valid: bool = True
    message_id: str = ""
    at: datetime = T0


def _identify() -> st.SearchStrategy[Ev]:
    def build(user: str, minutes: int, phone: bool, email: bool, address: int | None,
              birthday: tuple[str, date | None] | None) -> Ev:
        text, dob = birthday if birthday is not None else (None, None)
        return Ev("identify", user, minutes, phone=phone, email=email, address=address,
                  birthday=text, dob=dob, valid=birthday is None or dob is not None)

    birthday = st.one_of(
        st.none(),
        st.none(),
        _dob().map(lambda d: (d.isoformat(), d)),
        _dob().map(lambda d: (f"{d.isoformat()}T00:00:00.000Z", d)),
        st.sampled_from([("1990-13-01", None), ("1990-01-18T15:00:00Z", None),
                         ("2030-01-01", None)]),
    )
    usually = st.sampled_from([True, True, True, False])
    return st.builds(build, st.sampled_from(USERS), st.integers(0, 30), usually, usually,
                     st.one_of(st.none(), st.integers(0, len(ADDRESSES) - 1)), birthday)


def _consent() -> st.SearchStrategy[Ev]:
    def build(user: str, minutes: int, channel: str, other: str | None, status: str,
              purpose: str) -> Ev:
        owner = other or user  # mostly the user's own; sometimes another's (C-6)
        identifier = PHONES[owner] if channel == "sms" else EMAILS[owner]
        return Ev("consent", user, minutes, channel=channel, identifier=identifier,
                  status=status, purpose=purpose)

    return st.builds(
        build, st.sampled_from(USERS), st.integers(0, 30), st.sampled_from(["sms", "email"]),
        st.one_of(st.none(), st.none(), st.none(), st.sampled_from(USERS)),
        st.sampled_from(["granted", "granted", "withdrawn", "withdrawn", "denied", "pending"]),
        st.sampled_from(["marketing", "marketing", "marketing", "transactional",
                         "sale_sharing", "sale_sharing"]),
    )


def _gpc() -> st.SearchStrategy[Ev]:
    return st.builds(
        lambda user, minutes, signal: Ev("gpc", user, minutes, signal=signal,
                                         valid=GPC_CONTEXTS[signal][1]),
        st.sampled_from(USERS), st.integers(0, 30),
        st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(0, len(GPC_CONTEXTS) - 1)),
    )


def _age() -> st.SearchStrategy[Ev]:
    def build(user: str, minutes: int, dob: date | None, bad_dob: str | None, level: str,
              place: int) -> Ev:
        birthday = bad_dob if bad_dob is not None else (dob.isoformat() if dob else None)
        valid = bad_dob is None and level != "id_scan" and PLACES[place][2] != "bad"
        return Ev("age", user, minutes, birthday=birthday, dob=dob if valid else None,
                  level=level, place=place, valid=valid)

    return st.builds(
        build, st.sampled_from(USERS), st.integers(0, 30),
        st.one_of(st.none(), *[_dob()] * 5),
        st.one_of(*[st.none()] * 8, st.sampled_from(["2001-02-29", "01/02/2001"])),
        st.sampled_from([*(lv.value for lv in LEVELS), "id_scan"]),
        st.one_of(st.integers(0, len(PLACES) - 1), st.integers(0, 8), st.integers(0, 8)),
    )


def _alias() -> st.SearchStrategy[Ev]:
    return st.permutations(USERS).map(lambda users: Ev("alias", users[0], 0, other=users[1]))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Ev], list[int], datetime, str | None]:
    """(events in processing order, batch sizes, now, default jurisdiction)."""
    kinds = st.one_of(_identify(), _identify(), _consent(), _consent(), _consent(), _age(),
                      _age(), _alias(), _alias(), _gpc())
    drawn = draw(st.lists(kinds, min_size=4, max_size=24))
    # Most users first sign up with their phone and email and often have their age
    # checked and grant SMS consent, so that admissions are common and the random
    # events after them (withdrawals, younger dates, merges, late arrivals) matter.
    prelude: list[Ev] = []
    for user in USERS:
        own: list[Ev] = []
        if draw(st.integers(0, 3)):
            dob = draw(st.one_of(st.none(), _dob()))
            address = draw(st.one_of(st.none(), st.integers(0, len(ADDRESSES) - 1)))
            own.append(Ev("identify", user, draw(st.integers(0, 30)), phone=True, email=True,
                          address=address, birthday=None if dob is None else dob.isoformat(),
                          dob=dob))
        if draw(st.booleans()):
            dob = draw(_dob())
            own.append(Ev("age", user, draw(st.integers(0, 30)), birthday=dob.isoformat(),
                          dob=dob, place=draw(st.sampled_from([*range(8), 6, 7, 8, 8, 8])),
                          level=draw(st.sampled_from(["dob_provided", "id_document"]))))
        if draw(st.integers(0, 2)):
            channel = draw(st.sampled_from(["sms", "email"]))
            # Mostly after the age check, so that it may have gated the grant (SMS-6a).
            own.append(Ev("consent", user, draw(st.integers(10, 30)), channel=channel,
                          identifier=(PHONES if channel == "sms" else EMAILS)[user],
                          purpose=draw(st.sampled_from(["marketing", "marketing",
                                                        "transactional"]))))
        # Sometimes in another order than signup's: the grant recorded before the age
        # check that gated it arrives (SMS-6a), or before the record placing the person
        # in the EU/UK (E-3).
        if len(own) > 1 and draw(st.booleans()):
            own = draw(st.permutations(own))
        prelude += own
    drawn = prelude + drawn
    if draw(st.booleans()):  # often a merge comes last, with nothing after it
        drawn.append(draw(_alias()))
    for i, ev in enumerate(drawn):
        ev.message_id = f"m{i}"
        # Identify times never tie, so the address trait's latest value is clear; the
        # other kinds tie often (C-3: a withdrawal wins a tie; A-5 full ties).
        ev.at = T0 + timedelta(minutes=ev.minutes, microseconds=i + 1 if ev.kind == "identify"
                               else 0)
    sequence = list(drawn)
    for source, offset in draw(st.lists(st.tuples(st.integers(0, len(drawn) - 1),
                                                  st.integers(1, 6)), max_size=4)):
        # A redelivery, later in the stream, with the same messageId.
        position = min(sequence.index(drawn[source]) + offset, len(sequence))
        sequence.insert(position, drawn[source])
    # An alias names two users who have already been seen, as an SDK's alias would.
    seen: set[str] = set()
    ordered: list[Ev] = []
    for ev in sequence:
        if ev.kind == "alias" and not {ev.user, ev.other} <= seen:
            continue
        seen.add(ev.user)
        ordered.append(ev)
    sizes: list[int] = []
    left = len(ordered)
    while left > 0:
        size = draw(st.integers(1, left))
        sizes.append(size)
        left -= size
    return ordered, sizes, draw(st.sampled_from(NOWS)), draw(st.sampled_from(DEFAULTS))


def soft_opt_in(ev: Ev) -> bool:
    """Whether an implied grant stands on the soft opt-in (E-3): at even minutes. A
    function of the event time, so statements tied on it say the same."""
    return ev.minutes % 2 == 0


def stated_gate(ev: Ev) -> VerificationLevel | None:
    """The age gate an SMS grant states itself (SMS-6a): every fourth minute, a typed
    date of birth or (too weak to count) an "I am 21+" checkbox."""
    if ev.channel != "sms" or ev.status != "granted" or ev.minutes % 4:
        return None
    return L.DOB_PROVIDED if ev.minutes % 8 == 0 else L.SELF_DECLARED


def _canonical(ev: Ev) -> CanonicalEvent:
    base: dict[str, Any] = {"message_id": ev.message_id, "timestamp": ev.at, "received_at": T0,
                            "source_id": 1, "user_id": ev.user}
    if ev.kind == "identify":
        traits: dict[str, Any] = {}
        if ev.phone:
            traits["phone"] = PHONES[ev.user]
        if ev.email:
            traits["email"] = EMAILS[ev.user]
        if ev.address is not None:
            traits["address"] = dict(ADDRESSES[ev.address][0])
        if ev.birthday is not None:
            traits["birthday"] = ev.birthday
        return CanonicalEvent(type="identify", traits=traits, **base)
    if ev.kind == "consent":
        props: dict[str, Any] = {"channel": ev.channel, "status": ev.status,
                                 "purpose": ev.purpose, "identifier": ev.identifier}
        if ev.status == "granted" and ev.identifier in EXPIRING:
            props |= {"kind": "implied", "expires_at": (ev.at + LIFETIME).isoformat()}
            if soft_opt_in(ev):
                props |= {"legal_basis": "soft_opt_in", "order_id": f"o-{ev.message_id}",
                          "opt_out_offered": True}
        gate = stated_gate(ev)
        if gate is not None:
            props["age_gate"] = {"level": gate.value, "method": "dob_form",
                                 "passed_at": (ev.at - timedelta(minutes=1)).isoformat()}
        return CanonicalEvent(type="track", name="Consent Updated", properties=props, **base)
    if ev.kind == "age":
        country, region, _ = PLACES[ev.place]
        props = {"level": ev.level}
        props |= {k: v for k, v in (("birthday", ev.birthday), ("country", country),
                                    ("region", region)) if v is not None}
        return CanonicalEvent(type="track", name="Age Verified", properties=props, **base)
    if ev.kind == "gpc":
        return CanonicalEvent(type="page", context=dict(GPC_CONTEXTS[ev.signal][0]), **base)
    return CanonicalEvent(type="alias", previous_id=ev.other, **base)


# -- the oracle ---------------------------------------------------------------------------


class Said(NamedTuple):
    """One consent statement as the oracle keeps it; C-3 compares `(at, rank)`."""

    at: datetime
    rank: int  # TIE_RANK of the status
    status: str
    expires: datetime | None
    gate: int | None = None  # rank of the age gate the statement states (SMS-6a)
    loose: bool = False  # an implied marketing grant without the soft opt-in (E-3)


Key = tuple[str, str, str]  # (channel, purpose, identifier)


@dataclass
class Group:
    users: set[str]
    held: set[str] = field(default_factory=set)  # phones and emails identified
    # (level rank, dob, event time, processing order, jurisdiction stated)
    records: list[tuple[int, date, datetime, int, str | None]] = field(default_factory=list)
    undated: list[tuple[int, datetime]] = field(default_factory=list)  # (level rank, time)
    address: tuple[datetime, int] | None = None  # (event time, index into ADDRESSES)
    consent: dict[Key, Said] = field(default_factory=dict)  # the current statement
    history: dict[Key, list[Said]] = field(default_factory=dict)  # every statement
    eu_uk_seen: bool = False  # ever placed in the EU/UK by a record or an address (E-3)


def oracle_opted_out(g: Group, now: datetime | None) -> bool:
    """P-5: a withdrawn or denied sale_sharing state, on any identifier, that no later
    granted one for a held identifier (not expired at `now`) outdoes."""
    outs = [said.at for (_, purpose, _), said in g.consent.items()
            if purpose == "sale_sharing" and said.status in ("withdrawn", "denied")]
    if not outs:
        return False
    latest = max(outs)
    return not any(
        purpose == "sale_sharing" and said.status == "granted" and said.at > latest
        and (now is None or said.expires is None or said.expires > now)
        and (channel == "browser" or identifier in g.held)
        for (channel, purpose, identifier), said in g.consent.items()
    )


def oracle_groups(events: list[Ev], sizes: list[int]) -> list[Group]:
    """Each batch as the pipeline runs it: identities, merges and consent statements
    first, then the batch's Global Privacy Control signals in order, each recorded only
    when its (final) profile is not opted out already."""
    groups = {u: Group({u}) for u in USERS}
    done: set[str] = set()
    signals: list[Ev] = []
    ends = {sum(sizes[: i + 1]) - 1 for i in range(len(sizes))}
    for order, ev in enumerate(events):
        if ev.message_id not in done:
            done.add(ev.message_id)
            if ev.kind == "gpc":
                if ev.valid:
                    signals.append(ev)
            else:
                _oracle_apply(groups, ev, order)
        if order in ends:  # the batch's transaction: its signals after everything else
            for sig in signals:
                g = groups[sig.user]
                if not oracle_opted_out(g, None):
                    key = ("browser", "sale_sharing", f"user_id:{sig.user}")
                    _oracle_say(g, key, Said(sig.at, TIE_RANK["withdrawn"], "withdrawn", None))
            signals = []
    unique: dict[int, Group] = {id(g): g for g in groups.values()}
    return list(unique.values())


def _oracle_apply(groups: dict[str, Group], ev: Ev, order: int) -> None:
    g = groups[ev.user]
    if ev.kind == "alias":
        other = groups[ev.other]
        if other is not g:
            g.users |= other.users
            g.held |= other.held
            g.records += other.records
            g.undated += other.undated
            g.eu_uk_seen |= other.eu_uk_seen
            if other.address and (g.address is None or other.address[0] > g.address[0]):
                g.address = other.address
            for key, value in other.consent.items():
                g.consent[key] = max(g.consent.get(key, value), value, key=lambda v: v[:2])
            for key, said in other.history.items():
                g.history.setdefault(key, []).extend(said)
            for u in other.users:
                groups[u] = g
    elif ev.kind == "identify":
        if ev.phone:
            g.held.add(PHONES[ev.user])
        if ev.email:
            g.held.add(EMAILS[ev.user])
        if ev.address is not None and (g.address is None or ev.at >= g.address[0]):
            g.address = (ev.at, ev.address)
        if ev.address is not None and ADDRESSES[ev.address][1] in EU_UK_PLACES:
            g.eu_uk_seen = True
        if ev.dob is not None:
            stated = ADDRESSES[ev.address][1] if ev.address is not None else None
            g.records.append((L.DOB_PROVIDED.rank, ev.dob, ev.at, order, stated))
    elif ev.kind == "age" and ev.valid:
        level = VerificationLevel.parse(ev.level)
        if ev.dob is not None:
            g.records.append((level.rank, ev.dob, ev.at, order, PLACES[ev.place][2]))
        else:  # an undated gate passed: evidence for SMS-6a, never a date of birth
            g.undated.append((level.rank, ev.at))
        if PLACES[ev.place][2] in EU_UK_PLACES:
            g.eu_uk_seen = True
    elif ev.kind == "consent":
        implied = ev.status == "granted" and ev.identifier in EXPIRING
        gate = stated_gate(ev)
        said = Said(
            ev.at, TIE_RANK[ev.status], ev.status, ev.at + LIFETIME if implied else None,
            gate=None if gate is None else gate.rank,
            loose=implied and ev.purpose == "marketing" and not soft_opt_in(ev),
        )
        _oracle_say(g, (ev.channel, ev.purpose, ev.identifier), said)


def _oracle_say(g: Group, key: Key, said: Said) -> None:
    """C-3: the latest by event time decides, a withdrawal winning a tie; at a full tie
    the first stays."""
    g.history.setdefault(key, []).append(said)
    if key not in g.consent or said[:2] > g.consent[key][:2]:
        g.consent[key] = said


def oracle_jurisdiction(g: Group, default: str | None) -> str | None:
    winner = max(g.records)
    if winner[4] is not None:
        return winner[4]
    if g.address is not None:
        placed = ADDRESSES[g.address[1]][2][default]
        return default if placed == "default" else placed
    return default


def oracle_of_age(dob: date, jurisdiction: str | None, category: str, now: datetime) -> bool:
    if jurisdiction is None:
        return False
    policy = default_policy()  # data only: the row and the zone
    found = policy.lookup(jurisdiction, category)
    if found.status is not RuleStatus.MINIMUM_AGE or found.rule is None:
        return False
    minimum = found.rule.minimum_age
    assert minimum is not None
    today = now.astimezone(ZoneInfo(str(policy.zone(jurisdiction)))).date()
    if dob > today:
        return False
    if found.rule.rule_type is RuleType.CALENDAR_YEAR:
        return today.year - dob.year >= minimum
    birthday = (dob.month, dob.day)
    if birthday == (2, 29) and not calendar.isleap(today.year):
        birthday = (3, 1)
    years = today.year - dob.year - ((today.month, today.day) < birthday)
    return years >= minimum


def oracle_gated(g: Group, said: Said, category: str, jurisdiction: str | None) -> bool:
    """SMS-6a: the grant states a gate of at least a typed date of birth, or the age
    the records gave by its time (the best dated one, else the best undated gate)
    reaches that level and, with a date, was of age for the category then."""
    if said.gate is not None and said.gate >= L.DOB_PROVIDED.rank:
        return True
    dated = [(rank, dob) for rank, dob, at, *_ in g.records if at <= said.at]
    if dated:
        rank, dob = max(dated)
        return rank >= L.DOB_PROVIDED.rank and oracle_of_age(dob, jurisdiction, category,
                                                            said.at)
    return any(rank >= L.DOB_PROVIDED.rank for rank, at in g.undated if at <= said.at)


def _counts(g: Group, said: Said, r: Restriction, now: datetime, jurisdiction: str | None
            ) -> bool:
    """Whether a granted statement is consent for `r` at `now`: not expired (C-7), not
    implied without the soft opt-in for someone placed in the EU/UK (E-3), and on SMS
    age-gated (SMS-6a)."""
    if said.status != "granted" or (said.expires is not None and said.expires <= now):
        return False
    if said.loose and jurisdiction is not None and jurisdiction[:2] in EU_UK_PLACES:
        return False
    return r.channel != "sms" or oracle_gated(g, said, r.category, jurisdiction)


def oracle_uncertain(g: Group, r: Restriction, default: str | None) -> bool:
    """E-3 refuses an implied grant without the soft opt-in when the ledger already
    places the person in the EU/UK, which depends on what was processed before it:
    for a group with such a grant on the channel that was ever placed there, the
    oracle knows what the guard may admit, not exactly what it will."""
    return (default == "GB" or g.eu_uk_seen) and any(
        said.loose for (channel, purpose, _), history in g.history.items()
        if (channel, purpose) == (r.channel, r.purpose) for said in history
    )


def oracle_admits(
    g: Group, r: Restriction, now: datetime, default: str | None, *, permissive: bool = False
) -> dict[str, bool]:
    """What the guard must decide. `permissive`: consent as the most the ledger can
    hold, any implied grant without the soft opt-in having been recorded or refused."""
    verdict = {"of_age": False, "level": False, "consent": False}
    jurisdiction = oracle_jurisdiction(g, default) if g.records else None
    if g.records:
        rank, dob, *_ = max(g.records)
        verdict["of_age"] = oracle_of_age(dob, jurisdiction, r.category, now)
        verdict["level"] = rank >= r.required_level.rank
    for (channel, purpose, identifier), current in g.consent.items():
        if (channel, purpose) != (r.channel, r.purpose) or identifier not in g.held:
            continue
        if not permissive:
            verdict["consent"] |= _counts(g, current, r, now, jurisdiction)
            continue
        history = g.history[(channel, purpose, identifier)]
        for said in history:  # it can be the state if all that beat it were refused
            if _counts(g, said, r, now, jurisdiction) and all(
                other.loose for other in history if other[:2] > said[:2]
            ):
                verdict["consent"] = True
    if r.sharing:
        verdict["sale_sharing"] = not oracle_opted_out(g, now)
    return verdict


def _run_scenario(engine: Engine, events: list[Ev], sizes: list[int]) -> None:
    start = 0
    for size in sizes:  # each batch its own transaction, as the worker runs them
        with engine.begin() as conn:
            process_events(conn, [_canonical(ev) for ev in events[start : start + size]])
        start += size


def _set_default(code: str | None) -> None:
    if code is None:
        os.environ.pop("GUESTLIST_DEFAULT_JURISDICTION", None)
    else:
        os.environ["GUESTLIST_DEFAULT_JURISDICTION"] = code
    get_settings.cache_clear()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_no_minor_unverified_or_unconsented_profile_is_ever_admitted(
    engine: Engine, scenario: tuple[list[Ev], list[int], datetime, str | None]
) -> None:  # C-3, C-4, C-6, C-7, E-3, SMS-6a, P-5
    events, sizes, now, default = scenario
    wipe(engine)  # a fresh database per example
    _set_default(default)
    _run_scenario(engine, events, sizes)
    groups = [g for g in oracle_groups(events, sizes) if g.users & {ev.user for ev in events}]
    with engine.connect() as conn:
        every = [int(pid) for pid in conn.scalars(select(profiles.c.id))]
        facts_by_id = load_facts(conn, every)
        live = {pid for pid, f in facts_by_id.items() if f.merged_into is None}
        owner = {
            r.key: int(r.profile_id)
            for r in conn.execute(
                select(identifiers.c.key, identifiers.c.profile_id).where(
                    identifiers.c.kind == "user_id"
                )
            )
        }
        for restriction in RESTRICTIONS:
            admitted = admitted_profiles(conn, every, restriction, now)
            assert admitted <= live  # a merged-away profile is never admitted
            expected: set[int] = set()
            for g in groups:
                (pid,) = {owner[u] for u in g.users if u in owner}  # one profile per group
                decision = guard(facts_by_id[pid], restriction, now)
                uncertain = oracle_uncertain(g, restriction, default)
                verdict = oracle_admits(g, restriction, now, default, permissive=uncertain)
                if decision.admitted:  # the safety property, stated on its own
                    assert verdict["of_age"], ("minor or unknown age admitted", decision)
                    assert verdict["level"], ("unverified admitted", decision)
                    assert verdict["consent"], ("no consent admitted", decision)
                    assert verdict.get("sale_sharing", True), ("opted out shared", decision)
                if not uncertain:
                    assert decision.admitted == all(verdict.values()), (restriction, g, decision)
                if decision.admitted:
                    expected.add(pid)
            assert admitted == expected
    assert len(live) == len(groups)  # every group is one live profile, and no more
