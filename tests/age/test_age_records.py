"""Age records and the state derived from them (both databases); rule ids from compliance.md."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from guestlist.age import VerificationLevel, default_policy
from guestlist.age.places import PlaceError, address_place, jurisdiction_of
from guestlist.age.records import (
    AgeStatement,
    age_state_of,
    append_age_record,
    recompute_age_state,
)
from guestlist.audit import audit_entries
from guestlist.canonical import CanonicalEvent
from guestlist.pipeline import process_events
from guestlist.settings import get_settings
from guestlist.store.tables import age_records, age_state, identifiers, profiles

L = VerificationLevel
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def default_jurisdiction(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Call with a code (or None) to set GUESTLIST_DEFAULT_JURISDICTION."""

    def set_default(code: str | None) -> None:
        if code is None:
            monkeypatch.delenv("GUESTLIST_DEFAULT_JURISDICTION", raising=False)
        else:
            monkeypatch.setenv("GUESTLIST_DEFAULT_JURISDICTION", code)
        get_settings.cache_clear()

    set_default(None)
    yield set_default
    get_settings.cache_clear()


def identify(message_id: str, user: str, minutes: int = 0, **traits: Any) -> CanonicalEvent:
    return CanonicalEvent(
        type="identify",
        message_id=message_id,
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        traits=traits,
    )


def alias(message_id: str, user: str, previous: str) -> CanonicalEvent:
    return CanonicalEvent(
        type="alias",
        message_id=message_id,
        timestamp=T0,
        received_at=datetime.now(UTC),
        source_id=1,
        user_id=user,
        previous_id=previous,
    )


def run(engine: Engine, *batch: CanonicalEvent) -> None:
    with engine.begin() as conn:
        process_events(conn, list(batch))


def profile_of(engine: Engine, user: str) -> int:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == "user_id", identifiers.c.key == user
            )
        )
    assert pid is not None
    return int(pid)


def statement(
    dob: date | None,
    level: L,
    minutes: int = 0,
    *,
    country: str | None = None,
    region: str | None = None,
    **extra: Any,
) -> AgeStatement:
    return AgeStatement(
        dob=dob,
        level=level,
        event_time=T0 + timedelta(minutes=minutes),
        country=country,
        region=region,
        **extra,
    )


def append(engine: Engine, profile_id: int, st: AgeStatement) -> int:
    with engine.begin() as conn:
        return append_age_record(conn, profile_id, st)


def state(engine: Engine, profile_id: int) -> Any:
    with engine.connect() as conn:
        return age_state_of(conn, profile_id)


@pytest.fixture
def ann(engine: Engine, default_jurisdiction: Any) -> int:
    run(engine, identify("i-ann", "ann"))
    return profile_of(engine, "ann")


# --- conflicting dates of birth -------------------------------------------------


def test_higher_level_wins_over_a_younger_date_of_birth(engine: Engine, ann: int) -> None:
    append(engine, ann, statement(date(2008, 5, 1), L.DOB_PROVIDED, country="US"))
    scanned = append(engine, ann, statement(date(2001, 5, 1), L.ID_DOCUMENT, country="US"))
    s = state(engine, ann)
    assert (s.dob, s.level, s.record_id) == (date(2001, 5, 1), L.ID_DOCUMENT, scanned)
    assert s.conflict is True  # flagged for the console


def test_equal_level_the_youngest_counts_and_the_conflict_is_flagged(
    engine: Engine, ann: int
) -> None:
    older = append(engine, ann, statement(date(2000, 1, 1), L.DOB_PROVIDED, 5, country="US"))
    younger = append(engine, ann, statement(date(2005, 1, 1), L.DOB_PROVIDED, 1, country="GB"))
    s = state(engine, ann)
    assert (s.dob, s.record_id, s.jurisdiction) == (date(2005, 1, 1), younger, "GB")
    assert s.conflict is True and s.conflicting == (older,)
    with engine.connect() as conn:
        conflict = conn.scalar(select(age_records.c.id).where(age_records.c.id == older))
    assert conflict is not None  # the losing record is kept (append-only)


def test_the_same_date_from_two_sources_is_no_conflict(engine: Engine, ann: int) -> None:
    append(engine, ann, statement(date(2000, 1, 1), L.DOB_PROVIDED, country="US"))
    append(engine, ann, statement(date(2000, 1, 1), L.IN_PERSON_ID, country="US"))
    s = state(engine, ann)
    assert (s.level, s.conflict) == (L.IN_PERSON_ID, False)


def test_full_tie_goes_to_the_later_statement(engine: Engine, ann: int) -> None:
    append(engine, ann, statement(date(2000, 1, 1), L.DOB_PROVIDED, 3, country="US"))
    append(engine, ann, statement(date(2000, 1, 1), L.DOB_PROVIDED, 7, region="CA-QC"))
    append(engine, ann, statement(date(2000, 1, 1), L.DOB_PROVIDED, 5, country="GB"))  # late
    assert state(engine, ann).jurisdiction == "CA-QC"


def test_an_undated_record_is_evidence_but_gives_no_date(engine: Engine, ann: int) -> None:
    append(engine, ann, statement(None, L.IN_PERSON_ID, country="US"))
    s = state(engine, ann)
    assert (s.dob, s.level, s.jurisdiction) == (None, L.IN_PERSON_ID, "US")
    dated = append(engine, ann, statement(date(2000, 1, 1), L.SELF_DECLARED, country="US"))
    s = state(engine, ann)
    assert (s.dob, s.level, s.record_id) == (date(2000, 1, 1), L.SELF_DECLARED, dated)


# --- the jurisdiction ----------------------------------------------------------------


def test_jurisdiction_is_the_winning_records_region_else_its_country(
    engine: Engine, ann: int
) -> None:
    append(engine, ann, statement(date(2000, 1, 1), L.DOB_PROVIDED, country="CA", region="CA-QC"))
    assert (state(engine, ann).jurisdiction, state(engine, ann).jurisdiction_from) == (
        "CA-QC",
        "record",
    )
    append(engine, ann, statement(date(2000, 1, 1), L.ID_DOCUMENT, country="GB"))
    assert state(engine, ann).jurisdiction == "GB"


def test_without_one_on_the_record_the_address_trait_decides(
    engine: Engine, default_jurisdiction: Any
) -> None:
    default_jurisdiction("US-TX")
    run(engine, identify("i", "bo", address={"street": "1 Rue", "country": "CA", "state": "QC"}))
    bo = profile_of(engine, "bo")
    append(engine, bo, statement(date(2000, 1, 1), L.ID_DOCUMENT))
    s = state(engine, bo)
    assert (s.jurisdiction, s.jurisdiction_from) == ("CA-QC", "address")


def test_without_record_or_address_the_default_setting_decides(
    engine: Engine, ann: int, default_jurisdiction: Any
) -> None:
    default_jurisdiction("US-TX")
    append(engine, ann, statement(date(2000, 1, 1), L.ID_DOCUMENT))
    s = state(engine, ann)
    assert (s.jurisdiction, s.jurisdiction_from) == ("US-TX", "default")


def test_without_any_the_jurisdiction_is_unknown(engine: Engine, ann: int) -> None:
    append(engine, ann, statement(date(2000, 1, 1), L.ID_DOCUMENT))
    s = state(engine, ann)
    assert (s.jurisdiction, s.jurisdiction_from) == (None, None)


def test_an_address_in_an_unreadable_country_is_unknown_whatever_the_default(
    engine: Engine, default_jurisdiction: Any
) -> None:  # a missing rule is unknown, never a guess
    default_jurisdiction("US-TX")
    run(engine, identify("i", "bo", address={"country": "Narnia"}))
    bo = profile_of(engine, "bo")
    append(engine, bo, statement(date(2000, 1, 1), L.ID_DOCUMENT))
    assert state(engine, bo).jurisdiction is None


def test_a_later_address_moves_the_profile_and_a_late_older_one_does_not(
    engine: Engine, default_jurisdiction: Any
) -> None:
    run(engine, identify("i1", "bo", 1, address={"country": "US", "state": "Texas"}))
    bo = profile_of(engine, "bo")
    append(engine, bo, statement(date(2000, 1, 1), L.ID_DOCUMENT))
    assert state(engine, bo).jurisdiction == "US-TX"
    run(engine, identify("i2", "bo", 10, address={"country": "Canada", "state": "Ontario"}))
    assert state(engine, bo).jurisdiction == "CA-ON"
    run(engine, identify("i3", "bo", 5, address={"country": "GB"}))  # older, arrives late
    assert state(engine, bo).jurisdiction == "CA-ON"


def state_row(engine: Engine, profile_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(age_state).where(age_state.c.profile_id == profile_id)).one()


def test_a_state_that_does_not_change_is_not_rewritten(
    engine: Engine, default_jurisdiction: Any
) -> None:  # the state follows the records, written only when it changes
    run(engine, identify("i1", "bo", 1, address={"country": "US", "state": "Texas"}))
    bo = profile_of(engine, "bo")
    append(engine, bo, statement(date(2000, 1, 1), L.ID_DOCUMENT))
    written = state_row(engine, bo)
    # The same address again, and a weaker statement of the same date: nothing changes.
    run(engine, identify("i2", "bo", 2, address={"country": "US", "state": "TX"}))
    append(engine, bo, statement(date(2000, 1, 1), L.SELF_DECLARED, 3))
    assert state_row(engine, bo) == written
    with engine.connect() as conn:  # the statement is still evidence, and audited
        assert len(list(conn.execute(select(age_records.c.id)))) == 2
        outcomes = [
            e.detail["outcome"]
            for e in audit_entries(conn, profile_id=bo, action="age.recorded")
        ]
    assert outcomes == ["decides", "outranked"]
    run(engine, identify("i3", "bo", 4, address={"country": "GB"}))  # this one moves her
    moved = state_row(engine, bo)
    assert moved.jurisdiction == "GB" and moved.updated_at >= written.updated_at
    assert state(engine, bo).jurisdiction_from == "address"


def test_the_state_detail_leaves_out_what_is_empty(engine: Engine, ann: int) -> None:
    first = append(engine, ann, statement(date(2000, 1, 1), L.DOB_PROVIDED))
    assert state_row(engine, ann).detail == f'{{"record_id":{first}}}'
    assert (state(engine, ann).jurisdiction_from, state(engine, ann).conflicting) == (None, ())
    other = append(engine, ann, statement(date(2000, 1, 2), L.DOB_PROVIDED, country="US"))
    s = state(engine, ann)
    assert (s.record_id, s.jurisdiction_from, s.conflicting) == (other, "record", (first,))


def test_recompute_after_the_default_changes(
    engine: Engine, ann: int, default_jurisdiction: Any
) -> None:
    append(engine, ann, statement(date(2000, 1, 1), L.ID_DOCUMENT))
    assert state(engine, ann).jurisdiction is None
    default_jurisdiction("GB")
    with engine.begin() as conn:
        recomputed = recompute_age_state(conn, [ann])
    assert recomputed[ann].jurisdiction == "GB" == state(engine, ann).jurisdiction


def test_a_malformed_default_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUESTLIST_DEFAULT_JURISDICTION", "Texas")
    get_settings.cache_clear()
    try:
        with pytest.raises(ValueError, match="default_jurisdiction"):
            get_settings()
    finally:
        get_settings.cache_clear()


# --- merges --------------------------------------------------------------------------


def test_a_merge_judges_the_survivor_by_the_records_of_both(
    engine: Engine, default_jurisdiction: Any
) -> None:  # A-5 across profiles
    run(engine, identify("i1", "u1"), identify("i2", "u2"))
    u1, u2 = profile_of(engine, "u1"), profile_of(engine, "u2")
    append(engine, u1, statement(date(2001, 1, 1), L.DOB_PROVIDED, country="US"))
    scan = append(engine, u2, statement(date(2000, 1, 1), L.ID_DOCUMENT, region="US-CA"))
    run(engine, alias("a", "u1", "u2"))
    survivor = profile_of(engine, "u1")
    assert profile_of(engine, "u2") == survivor
    s = state(engine, survivor)
    assert (s.dob, s.level, s.jurisdiction, s.record_id) == (
        date(2000, 1, 1),
        L.ID_DOCUMENT,
        "US-CA",
        scan,
    )
    assert s.conflict is True
    merged = u2 if survivor == u1 else u1
    assert state(engine, merged) is None
    with engine.connect() as conn:
        assert conn.scalar(select(profiles.c.merged_into).where(profiles.c.id == merged))


def test_a_merge_keeps_the_later_address(engine: Engine, default_jurisdiction: Any) -> None:
    run(
        engine,
        identify("i1", "u1", 1, address={"country": "US", "state": "TX"}),
        identify("i2", "u2", 9, address={"country": "GB"}),
    )
    append(engine, profile_of(engine, "u1"), statement(date(2000, 1, 1), L.ID_DOCUMENT))
    run(engine, alias("a", "u1", "u2"))
    assert state(engine, profile_of(engine, "u1")).jurisdiction == "GB"


# --- audit ---------------------------------------------------------------------------


def test_each_record_is_audited_with_level_and_outcome_never_the_date(
    engine: Engine, ann: int
) -> None:  # P-6, A-3
    append(
        engine,
        ann,
        statement(
            date(2004, 7, 9),
            L.DATABASE_CHECK,
            country="US",
            provider="Veratad",
            reference="tx-1",
            method="database",
            recorded_by="staff:7",
        ),
    )
    append(engine, ann, statement(date(2004, 7, 10), L.DOB_PROVIDED, country="US"))
    append(engine, ann, statement(None, L.SELF_DECLARED))
    with engine.connect() as conn:
        entries = audit_entries(conn, profile_id=ann, action="age.recorded")
    assert [e.detail["outcome"] for e in entries] == ["decides", "outranked", "undated"]
    first = entries[0]
    assert first.actor == "staff:7"
    assert first.detail["level"] == "database_check"
    assert first.detail["provider"] == "Veratad"
    assert entries[1].detail["conflict"] is True
    for entry in entries:
        text = str(entry.detail)
        assert "2004" not in text and "tx-1" not in text


# --- statements and places -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"country": "usa"}, "alpha-2"),
        ({"region": "QC"}, "3166-2"),
        ({"country": "US", "region": "CA-QC"}, "not in country"),
    ],
)
def test_a_statement_checks_its_codes(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AgeStatement(dob=None, level=L.SELF_DECLARED, event_time=T0, **kwargs)


def test_a_statement_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        AgeStatement(dob=None, level=L.SELF_DECLARED, event_time=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("address", "default", "expected", "placed"),
    [
        ({"country": "US", "state": "TX"}, None, "US-TX", True),
        ({"country": "USA", "state": "texas"}, None, "US-TX", True),
        ({"country": "United States", "state": "New York"}, None, "US-NY", True),
        ({"Country": "Canada", "State": "Québec"}, None, "CA-QC", True),
        ({"country": "CA", "state": "CA-QC"}, None, "CA-QC", True),
        ({"country": "ca", "state": "Atlantis"}, None, "CA", True),  # state unread: country
        ({"country": "US", "state": "ZZ"}, None, "US", True),  # not a US state
        ({"country": "gb", "city": "Leeds"}, None, "GB", True),
        ({"country": "UK"}, None, "GB", True),
        ({"country": "Deutschland"}, None, "DE", True),
        ({"country": "Narnia"}, "US-TX", None, True),  # somewhere unknown: no default
        ({"state": "CA"}, "US-TX", "US-CA", True),  # read in the default's country
        ({"state": "Quebec"}, "CA-ON", "CA-QC", True),
        ({"state": "Atlantis"}, "US-TX", None, False),  # unread: the default applies
        ({"state": "CA"}, None, None, False),
        ({"city": "Austin"}, "US-TX", None, False),
        ("1 Main St, Austin TX", "US-TX", None, False),
        (None, "US-TX", None, False),
    ],
)
def test_address_place(
    address: Any, default: str | None, expected: str | None, placed: bool
) -> None:
    place = address_place(address, default=default)
    assert (place.jurisdiction, place.placed) == (expected, placed)


@pytest.mark.parametrize(
    ("country", "region", "expected"),
    [
        ("US", None, "US"),
        ("us", "tx", "US-TX"),
        (None, "CA-QC", "CA-QC"),
        ("CA", "CA-QC", "CA-QC"),
        ("IN", "KA", "IN-KA"),  # India's subdivisions are not listed: any code is known
        (None, None, None),
    ],
)
def test_jurisdiction_of(country: str | None, region: str | None, expected: str | None) -> None:
    assert jurisdiction_of(country, region) == expected


@pytest.mark.parametrize(
    ("country", "region", "field"),
    [
        ("NZ", None, "country"),  # no zone, no rows: the table cannot judge there
        ("USA", None, "country"),
        ("US", "ZZ", "region"),  # the table lists every US state
        ("US", "CA-QC", "region"),
        (None, "QC", "region"),
    ],
)
def test_jurisdiction_of_refuses(country: str | None, region: str | None, field: str) -> None:
    with pytest.raises(PlaceError) as caught:
        jurisdiction_of(country, region)
    assert caught.value.field == field


def test_policy_knows() -> None:
    policy = default_policy()
    assert policy.knows("US") and policy.knows("US-TX") and policy.knows("CA-YT")
    assert not policy.knows("US-ZZ") and not policy.knows("NZ") and not policy.knows("texas")
    assert policy.knows("IN-KA") and policy.knows("GB-SCT")
