"""Age on the local date and marketing eligibility (A-2, A-4, A-6)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guestlist.age import (
    AgePolicy,
    EligibilityStatus,
    InvalidDateOfBirth,
    LeapDayRule,
    RuleType,
    VerificationLevel,
    age_on,
    default_policy,
    eligibility,
    local_today,
    of_age_on,
    parse_dob,
)

L = VerificationLevel
S = EligibilityStatus


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- age_on and the leap day ------------------------------------------------------


def test_age_counts_completed_years() -> None:
    assert age_on(date(2000, 6, 15), date(2025, 6, 14)) == 24
    assert age_on(date(2000, 6, 15), date(2025, 6, 15)) == 25
    assert age_on(date(2000, 6, 15), date(2000, 6, 15)) == 0
    with pytest.raises(ValueError, match="before the date of birth"):
        age_on(date(2000, 6, 15), date(2000, 6, 14))


def test_feb29_birthday_comes_of_age_on_march_1_in_non_leap_years() -> None:
    dob = date(2004, 2, 29)
    assert age_on(dob, date(2022, 2, 28)) == 17
    assert age_on(dob, date(2022, 3, 1)) == 18
    assert of_age_on(dob, 18) == date(2022, 3, 1)
    now = utc("2022-02-28T12:00:00")
    result = eligibility(dob, "GB", "alcohol", now, level=L.DOB_PROVIDED)
    assert result.status is S.UNDER_AGE
    assert result.of_age_on == date(2022, 3, 1)
    later = eligibility(dob, "GB", "alcohol", now + timedelta(days=1), level=L.DOB_PROVIDED)
    assert later.status is S.ELIGIBLE


def test_feb29_birthday_is_feb29_in_leap_years() -> None:
    dob = date(2004, 2, 29)
    assert age_on(dob, date(2024, 2, 28)) == 19
    assert age_on(dob, date(2024, 2, 29)) == 20
    assert of_age_on(dob, 20) == date(2024, 2, 29)


def test_feb29_birthday_on_feb28_where_the_row_says_so() -> None:
    dob = date(2004, 2, 29)
    assert age_on(dob, date(2022, 2, 28), feb29_birthday_on=LeapDayRule.FEB28) == 18
    policy = AgePolicy.from_toml(
        '[zones]\nNZ = "Pacific/Auckland"\n[[rule]]\njurisdiction = "NZ"\n'
        'category = "alcohol"\nminimum_age = 18\nfeb29_birthday_on = "feb28"\n'
        'source = "test"\nverified = true\n'
    )
    now = utc("2022-02-27T12:00:00")  # 28 Feb 01:00 in Auckland
    result = eligibility(dob, "NZ", "alcohol", now, level=L.DOB_PROVIDED, policy=policy)
    assert result.status is S.ELIGIBLE
    assert result.of_age_on == date(2022, 2, 28)


# --- the local date ---------------------------------------------------------------


def test_birthday_today_in_a_zone_ahead_of_utc() -> None:
    dob = date(2005, 6, 15)
    now = utc("2025-06-14T15:30:00")  # 15 June 00:30 in Tokyo, still 14 June in UTC
    assert now.date() == date(2025, 6, 14)
    assert local_today("JP", now) == date(2025, 6, 15)
    result = eligibility(dob, "JP", "alcohol", now, level=L.DOB_PROVIDED)
    assert result.status is S.ELIGIBLE
    assert result.minimum_age == 20
    assert result.local_date == date(2025, 6, 15)
    an_hour_earlier = eligibility(
        dob, "JP", "alcohol", now - timedelta(hours=1), level=L.DOB_PROVIDED
    )
    assert an_hour_earlier.status is S.UNDER_AGE


def test_birthday_not_yet_in_a_zone_behind_utc() -> None:
    dob = date(2004, 6, 15)
    now = utc("2025-06-15T05:00:00")  # 14 June 19:00 in Honolulu, 01:00 on 15 June in New York
    assert eligibility(dob, "US", "alcohol", now, level=L.DOB_PROVIDED).status is S.UNDER_AGE
    assert eligibility(dob, "US-NY", "alcohol", now, level=L.DOB_PROVIDED).status is S.ELIGIBLE


def test_local_today_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        local_today("JP", datetime(2025, 6, 15, 12, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        eligibility(date(2000, 1, 1), "JP", "alcohol", datetime(2025, 6, 15), level=L.DOB_PROVIDED)


def test_calendar_year_rule_allows_from_1_january_of_the_year_one_turns_19() -> None:
    dob = date(2006, 12, 31)
    new_year = utc("2024-12-31T15:30:00")  # 1 January 2025 00:30 in Seoul
    result = eligibility(dob, "KR", "alcohol", new_year, level=L.DOB_PROVIDED)
    assert result.status is S.ELIGIBLE
    assert result.of_age_on == date(2025, 1, 1)
    assert age_on(dob, result.local_date or date.min) == 18  # not 19 by birthday
    eve = eligibility(dob, "KR", "alcohol", new_year - timedelta(hours=1), level=L.DOB_PROVIDED)
    assert eve.status is S.UNDER_AGE


# --- eligibility outcomes ---------------------------------------------------------

NOW = utc("2025-06-15T12:00:00")
ADULT = date(1990, 1, 1)


def test_missing_dob_is_unknown_dob() -> None:
    result = eligibility(None, "GB", "alcohol", NOW, level=L.IN_PERSON_ID)
    assert result.status is S.UNKNOWN_DOB
    assert not result.eligible
    assert result.minimum_age == 18
    assert result.of_age_on is None


def test_dob_in_the_future_is_invalid_not_eligible() -> None:
    result = eligibility(date(2025, 6, 16), "GB", "alcohol", NOW, level=L.IN_PERSON_ID)
    assert result.status is S.FUTURE_DOB
    assert not result.eligible
    born_today = eligibility(date(2025, 6, 15), "GB", "alcohol", NOW, level=L.IN_PERSON_ID)
    assert born_today.status is S.UNDER_AGE


def test_missing_row_is_unknown_jurisdiction_rule() -> None:
    for jurisdiction, category in [("CA", "alcohol"), ("IN-MH", "alcohol"), ("NZ", "alcohol")]:
        result = eligibility(ADULT, jurisdiction, category, NOW, level=L.IN_PERSON_ID)
        assert result.status is S.UNKNOWN_JURISDICTION_RULE
        assert result.rule is None
        assert result.minimum_age is None


def test_prohibited_row_is_never_eligible() -> None:
    for jurisdiction, category in [("GB", "cannabis"), ("AU", "vape"), ("US-VA", "cannabis")]:
        result = eligibility(ADULT, jurisdiction, category, NOW, level=L.IN_PERSON_ID)
        assert result.status is S.PROHIBITED


def test_insufficient_level_for_vape_marketing() -> None:
    weak = eligibility(ADULT, "US", "vape", NOW, level=L.DOB_PROVIDED)
    assert weak.status is S.INSUFFICIENT_LEVEL
    assert weak.required_level is L.DATABASE_CHECK
    assert eligibility(ADULT, "US", "vape", NOW, level=L.DATABASE_CHECK).eligible
    shop_rule = eligibility(
        ADULT, "US", "vape", NOW, level=L.DOB_PROVIDED, required_level=L.DOB_PROVIDED
    )
    assert shop_rule.eligible


def test_under_age_wins_over_insufficient_level() -> None:
    result = eligibility(date(2010, 1, 1), "US", "vape", NOW, level=L.SELF_DECLARED)
    assert result.status is S.UNDER_AGE
    assert result.of_age_on == date(2031, 1, 1)


def test_eligible_reports_the_rule_and_the_date_of_coming_of_age() -> None:
    result = eligibility(date(2000, 3, 10), "DE", "alcohol.spirits", NOW, level=L.DOB_PROVIDED)
    assert result.eligible
    assert result.minimum_age == 18
    assert result.of_age_on == date(2018, 3, 10)
    assert result.rule is not None and result.rule.source.startswith("Jugendschutzgesetz")


def test_sub_category_age_applies_in_eligibility() -> None:
    sixteen = date(2008, 6, 1)
    assert eligibility(sixteen, "DE", "alcohol.beer_wine", NOW, level=L.DOB_PROVIDED).eligible
    spirits = eligibility(sixteen, "DE", "alcohol.spirits", NOW, level=L.DOB_PROVIDED)
    assert spirits.status is S.UNDER_AGE


def test_subdivision_override_in_eligibility() -> None:
    nineteen = date(2006, 1, 1)
    assert eligibility(nineteen, "CA-ON", "cannabis", NOW, level=L.DATABASE_CHECK).eligible
    quebec = eligibility(nineteen, "CA-QC", "cannabis", NOW, level=L.DATABASE_CHECK)
    assert quebec.status is S.UNDER_AGE
    assert quebec.minimum_age == 21


# --- parse_dob --------------------------------------------------------------------


def test_parse_dob_reads_yyyy_mm_dd() -> None:
    assert parse_dob("2001-02-03") == date(2001, 2, 3)
    assert parse_dob("2004-02-29") == date(2004, 2, 29)


@pytest.mark.parametrize("text", ["2001-02-29", "2001-13-01", "2001-04-31", "0000-01-01"])
def test_parse_dob_rejects_impossible_dates(text: str) -> None:
    with pytest.raises(InvalidDateOfBirth, match="is not a calendar date"):
        parse_dob(text)


@pytest.mark.parametrize(
    "text",
    [
        "20010203",
        "2001-2-3",
        "03/02/2001",
        "2001/02/03",
        " 2001-02-03",
        "2001-02-03T00:00",
        "2001-W05-6",
        "\uff12\uff10\uff10\uff11-02-03",  # full-width digits
        "",
    ],
)
def test_parse_dob_rejects_other_formats(text: str) -> None:
    with pytest.raises(InvalidDateOfBirth, match="is not written YYYY-MM-DD"):
        parse_dob(text)


@given(st.dates())
def test_parse_dob_reads_back_every_iso_date(day: date) -> None:
    assert parse_dob(day.isoformat()) == day


# --- properties ---------------------------------------------------------------------

dobs = st.dates(min_value=date(1900, 1, 1), max_value=date(2030, 12, 31))
leap_rules = st.sampled_from(list(LeapDayRule))


@given(dobs, st.dates(max_value=date(2100, 1, 1)), st.dates(max_value=date(2100, 1, 1)), leap_rules)
def test_age_on_never_decreases(dob: date, a: date, b: date, leap: LeapDayRule) -> None:
    first, second = sorted([max(a, dob), max(b, dob)])
    assert age_on(dob, first, feb29_birthday_on=leap) <= age_on(dob, second, feb29_birthday_on=leap)


@given(dobs, st.integers(min_value=1, max_value=40), leap_rules)
def test_of_age_on_is_the_first_day_of_age(
    dob: date, minimum: int, leap: LeapDayRule
) -> None:
    day = of_age_on(dob, minimum, feb29_birthday_on=leap)
    assert age_on(dob, day, feb29_birthday_on=leap) == minimum
    assert age_on(dob, day - timedelta(days=1), feb29_birthday_on=leap) == minimum - 1


AGE_ROWS = sorted(
    (rule.jurisdiction, rule.category) for rule in default_policy().rules if not rule.prohibited
)
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)


@given(dobs, st.sampled_from(AGE_ROWS), instants, instants)
def test_once_eligible_later_instants_stay_eligible(
    dob: date, row: tuple[str, str], a: datetime, b: datetime
) -> None:
    earlier, later = sorted([a, b])
    jurisdiction, category = row
    first = eligibility(dob, jurisdiction, category, earlier, level=L.IN_PERSON_ID)
    second = eligibility(dob, jurisdiction, category, later, level=L.IN_PERSON_ID)
    if first.eligible:
        assert second.eligible


@given(dobs, st.sampled_from(AGE_ROWS), instants)
def test_eligibility_agrees_with_the_row_rule_type(
    dob: date, row: tuple[str, str], now: datetime
) -> None:
    jurisdiction, category = row
    result = eligibility(dob, jurisdiction, category, now, level=L.IN_PERSON_ID)
    rule = result.rule
    assert rule is not None and rule.minimum_age is not None and result.local_date is not None
    if result.status is S.FUTURE_DOB:
        assert dob > result.local_date
        return
    if rule.rule_type is RuleType.CALENDAR_YEAR:
        of_age = result.local_date.year - dob.year >= rule.minimum_age
    else:
        of_age = (
            age_on(dob, result.local_date, feb29_birthday_on=rule.feb29_birthday_on)
            >= rule.minimum_age
        )
    assert result.eligible == of_age
