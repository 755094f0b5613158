"""The evaluator: what each condition means for one profile (docs/segments.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guestlist.segments.evaluate import (
    Explained,
    ProfileEvent,
    ProfileView,
    completed_years,
    date_part,
    evaluate,
    explain,
)
from guestlist.segments.rules import (
    And,
    Not,
    Or,
    Rule,
    parse_rule,
)
from guestlist.segments.text import parse_text
from tests.segments.strategies import NOW, Memberships, memberships, profile_views, rules
from tests.segments.test_rules import AUDIENCE

NONE = Memberships(frozenset())


def holds(text: str, profile: ProfileView | None = None, now: datetime = NOW) -> bool:
    return evaluate(parse_text(text), profile or ProfileView(), now, NONE)


def with_traits(**traits: Any) -> ProfileView:
    return ProfileView(traits=traits)


def orders(*events: tuple[timedelta, dict[str, Any] | None]) -> ProfileView:
    return ProfileView(
        events=[ProfileEvent("Order Completed", NOW - ago, props) for ago, props in events]
    )


# -- traits -------------------------------------------------------------------------

ALL_OPS = [
    'trait.x = "a"',
    'trait.x != "a"',
    "trait.x < 1",
    "trait.x <= 1",
    "trait.x > 1",
    "trait.x >= 1",
    'trait.x >= "2024-01-01"',
    'trait.x in ["a"]',
    "trait.x not_in [1]",
    'trait.x contains "a"',
    'trait.x starts_with "a"',
    "trait.x exists",
]


@pytest.mark.parametrize("text", ALL_OPS)
@pytest.mark.parametrize("profile", [with_traits(), with_traits(x=None)], ids=["missing", "null"])
def test_a_missing_trait_fails_every_comparison_even_negative_ones(
    text: str, profile: ProfileView
) -> None:
    assert not holds(text, profile)
    assert holds("trait.x not_exists", profile)


@pytest.mark.parametrize("value", ["", [], {}, 0, False])
def test_empty_values_exist(value: Any) -> None:
    assert holds("trait.x exists", with_traits(x=value))
    assert not holds("trait.x not_exists", with_traits(x=value))


def test_numbers_and_strings_never_compare_equal() -> None:
    assert not holds("trait.x = 12", with_traits(x="12"))
    assert holds("trait.x != 12", with_traits(x="12"))  # present, and not the number 12
    assert not holds('trait.x = "12"', with_traits(x=12))
    assert not holds("trait.x > 1", with_traits(x="12"))
    assert not holds("trait.x in [12]", with_traits(x="12"))
    assert holds("trait.x not_in [12]", with_traits(x="12"))
    assert holds("trait.x = 12", with_traits(x=12.0))
    assert holds("trait.x = 12.0", with_traits(x=12))
    assert holds("trait.x in [1, 12]", with_traits(x=12.0))


def test_booleans_are_neither_numbers_nor_strings() -> None:
    assert holds("trait.x = true", with_traits(x=True))
    assert not holds("trait.x = 1", with_traits(x=True))
    assert not holds("trait.x = true", with_traits(x=1))
    assert not holds("trait.x >= 1", with_traits(x=True))
    assert not holds("trait.x in [1]", with_traits(x=True))
    assert not holds('trait.x = "true"', with_traits(x=True))
    assert holds("trait.x != false", with_traits(x=True))


def test_numbers_compare_exactly_as_written() -> None:
    assert holds("trait.x = 0.3", with_traits(x=0.3))
    assert holds("trait.x > 0.3", with_traits(x=0.30000000000000004))  # another number
    assert holds("trait.x = 1.0", with_traits(x=1))
    assert holds("trait.x < 9007199254740992", with_traits(x=9007199254740991))
    assert holds("trait.x > 9007199254740992", with_traits(x=2**60))
    assert not holds("trait.x > 1", with_traits(x=float("nan")))
    assert not holds("trait.x < 1", with_traits(x=float("-inf")))


def test_dates_compare_as_dates_when_the_rule_holds_one() -> None:
    stamp = with_traits(x="2024-05-01T23:30:00-05:00")
    assert holds('trait.x >= "2024-05-01"', stamp)  # the date as written, not in UTC
    assert holds('trait.x <= "2024-05-01"', stamp)
    assert not holds('trait.x > "2024-05-01"', stamp)
    assert holds('trait.x > "2024-04-30"', with_traits(x="2024-05-01"))
    assert holds('trait.x < "2024-05-02"', with_traits(x="2024-05-01 08:00"))
    for not_a_date in ("May 1 2024", "2024-5-1", "2024-05-01Z", "20240501", 20240501, True):
        assert not holds('trait.x > "2000-01-01"', with_traits(x=not_a_date)), not_a_date
    # equality is exact, on strings: no day-of-a-timestamp matching
    assert not holds('trait.x = "2024-05-01"', with_traits(x="2024-05-01T10:00:00Z"))
    assert holds('trait.x = "2024-05-01"', with_traits(x="2024-05-01"))


def test_date_part() -> None:
    assert date_part("2024-05-01") == "2024-05-01"
    assert date_part("2024-05-01T00:00") == "2024-05-01"
    assert date_part("2024-05-01 x") == "2024-05-01"
    assert date_part("2024-05-01\n") is None
    assert date_part("٢٠٢٤-05-01") is None  # ASCII digits only
    assert date_part(None) is None


def test_contains_is_substring_on_strings_and_membership_on_lists() -> None:
    assert holds('trait.x contains "our"', with_traits(x="bourbon"))
    assert not holds('trait.x contains "Our"', with_traits(x="bourbon"))
    assert holds('trait.x contains "gift"', with_traits(x=["vip", "gift"]))
    assert not holds('trait.x contains "gif"', with_traits(x=["vip", "gift"]))
    assert not holds('trait.x contains "1"', with_traits(x=[1]))
    assert not holds('trait.x contains "a"', with_traits(x={"a": 1}))
    assert not holds('trait.x contains "1"', with_traits(x=12))


def test_starts_with_and_in_are_case_sensitive_on_strings() -> None:
    assert holds('trait.x starts_with "Aus"', with_traits(x="Austin"))
    assert not holds('trait.x starts_with "aus"', with_traits(x="Austin"))
    assert not holds('trait.x starts_with "A"', with_traits(x=["Austin"]))
    assert holds('trait.x in ["Austin", "Dallas"]', with_traits(x="Dallas"))
    assert not holds('trait.x in ["Austin"]', with_traits(x="austin"))
    assert not holds('trait.x in ["Austin"]', with_traits(x=["Austin"]))


def test_lists_and_objects_are_present_but_equal_no_scalar() -> None:
    assert not holds('trait.x = "a"', with_traits(x=["a"]))
    assert holds('trait.x != "a"', with_traits(x=["a"]))
    assert holds('trait.x not_in ["a"]', with_traits(x={"a": 1}))


# -- events -------------------------------------------------------------------------

DAY = timedelta(days=1)
MICRO = timedelta(microseconds=1)


def test_the_window_includes_its_first_instant_and_the_future() -> None:
    rule = 'count("Order Completed" within 90d) >= 1'
    assert holds(rule, orders((90 * DAY, None)))
    assert not holds(rule, orders((90 * DAY + MICRO, None)))
    assert holds(rule, orders((-DAY, None)))  # dated after now: counted
    assert holds('count("Order Completed") >= 1', orders((3650 * DAY, None)))


def test_the_window_is_measured_in_days_of_24_hours_from_now_in_any_zone() -> None:
    elsewhere = NOW.astimezone(timezone(timedelta(hours=-7)))
    profile = orders((DAY, None))
    assert holds('count("Order Completed" within 1d) = 1', profile, now=elsewhere)


def test_event_names_match_exactly() -> None:
    profile = ProfileView(events=[("order completed", NOW, None), ("Order Completed ", NOW, None)])
    assert holds('count("Order Completed") = 0', profile)


def test_aggregates_over_nothing() -> None:
    empty = ProfileView()
    assert holds('count("Order Completed") = 0', empty)
    assert holds('sum("Order Completed".total) = 0', empty)
    for agg in ("avg", "min", "max"):
        for op in ("=", "!=", "<", ">=", ">"):
            assert not holds(f'{agg}("Order Completed".total) {op} 0', empty)


def test_sum_avg_min_max_skip_events_without_a_number() -> None:
    profile = orders(
        (DAY, {"total": 10}),
        (DAY, {"total": "20"}),
        (DAY, {"total": True}),
        (DAY, {"total": None}),
        (DAY, {}),
        (DAY, None),
        (DAY, {"total": 30.5}),
    )
    assert holds('count("Order Completed") = 7', profile)
    assert holds('sum("Order Completed".total) = 40.5', profile)
    assert holds('avg("Order Completed".total) = 20.25', profile)
    assert holds('min("Order Completed".total) = 10', profile)
    assert holds('max("Order Completed".total) = 30.5', profile)
    nothing = orders((DAY, {"total": "10"}))
    assert holds('sum("Order Completed".total) = 0', nothing)
    assert not holds('avg("Order Completed".total) >= 0', nothing)


def test_sums_and_means_are_exact_decimals() -> None:
    profile = orders((DAY, {"total": 0.1}), (DAY, {"total": 0.2}))
    assert holds('sum("Order Completed".total) = 0.3', profile)  # not 0.30000000000000004
    assert holds('avg("Order Completed".total) = 0.15', profile)
    thirds = orders((DAY, {"total": 1}), (DAY, {"total": 1}), (DAY, {"total": 2}))
    assert holds('avg("Order Completed".total) > 1.3333333333333333', thirds)
    assert holds('avg("Order Completed".total) < 1.3333333333333334', thirds)
    huge = orders((DAY, {"total": 1e308}), (DAY, {"total": 1e308}), (DAY, {"total": -1e308}))
    assert holds('sum("Order Completed".total) = 1e308', huge)


def test_properties_are_found_by_dotted_paths_through_objects_only() -> None:
    profile = orders(
        (DAY, {"shipping": {"cost": 5, "country": "US"}}),
        (DAY, {"shipping": [{"cost": 7}]}),
        (DAY, {"shipping.cost": 9}),
    )
    assert holds('sum("Order Completed".shipping.cost) = 5', profile)
    assert holds('count("Order Completed" where shipping.country = "US") = 1', profile)


def test_where_filters_all_hold_and_compare_like_traits() -> None:
    profile = orders(
        (DAY, {"category": "bourbon", "total": 50}),
        (2 * DAY, {"category": "bourbon", "total": 5}),
        (100 * DAY, {"category": "bourbon", "total": 80}),
        (DAY, {"category": "Bourbon", "total": 60}),
        (DAY, {"category": ["bourbon"], "total": 70}),
        (DAY, {"total": 90}),
    )
    q = '"Order Completed" where category = "bourbon"'
    assert holds(f"count({q} within 90d) = 2", profile)
    assert holds(f"count({q}) = 3", profile)
    assert holds(f"sum({q[:17]}.total{q[17:]} and total > 10) = 130", profile)
    assert holds('count("Order Completed" where category != "bourbon") = 2', profile)
    assert holds('count("Order Completed" where category not exists) = 1', profile)
    assert holds('count("Order Completed" where category contains "bourbon") = 4', profile)


def test_the_issues_example_audience() -> None:
    rule = parse_rule(AUDIENCE)
    member = ProfileView(
        traits={"lifetime_spend": 250.0, "favourite_category": "bourbon", "tags": ["gift"]},
        consent={("sms", "marketing"): "granted"},
        events=[ProfileEvent("Order Completed", NOW - n * DAY, {"total": 125}) for n in (3, 40)],
        of_age=lambda category, level: (category, level) == ("alcohol", None),
    )
    assert evaluate(rule, member, NOW, NONE)
    changes: list[dict[str, Any]] = [
        {"consent": {("sms", "marketing"): "withdrawn"}},
        {"consent": {("email", "marketing"): "granted"}},
        {"of_age": lambda category, level: False},
        {"events": member.events[:1]},
        {"traits": {**member.traits, "tags": ["gift", "vip-excluded"]}},
        {"traits": {**member.traits, "favourite_category": "gin"}},
        {"traits": {**member.traits, "lifetime_spend": "250"}},
    ]
    for changed in changes:
        assert not evaluate(rule, _replace(member, **changed), NOW, NONE), changed


def _replace(profile: ProfileView, **changes: Any) -> ProfileView:
    from dataclasses import replace

    return replace(profile, **changes)


# -- consent, identifiers, segments, age --------------------------------------------


@pytest.mark.parametrize(
    ("status", "granted"),
    [("granted", True), ("withdrawn", False), ("denied", False), ("expired", False),
     ("pending", False), ("unknown", False), (None, False)],
)  # fmt: skip
def test_only_granted_is_granted(status: str | None, granted: bool) -> None:
    consent = {} if status is None else {("sms", "marketing"): status}
    profile = ProfileView(consent=consent)
    assert holds("consent.sms is granted", profile) is granted
    assert holds("consent.sms is not_granted", profile) is not granted


def test_consent_is_per_channel_and_purpose() -> None:
    profile = ProfileView(consent={("sms", "transactional"): "granted"})
    assert not holds("consent.sms is granted", profile)
    assert holds("consent.sms.transactional is granted", profile)
    assert not holds("consent.email.transactional is granted", profile)


def test_identifiers() -> None:
    profile = ProfileView(identifiers={"email": {"a@example.com"}, "phone": set()})
    assert holds("identifier.email exists", profile)
    assert not holds("identifier.phone exists", profile)
    assert holds("identifier.phone not_exists", profile)
    assert holds("identifier.user_id not_exists", profile)


def test_in_segment_asks_the_membership_callable() -> None:
    asked: list[str] = []

    def segments(slug: str) -> bool:
        asked.append(slug)
        return slug == "vip"

    rule = parse_text('in_segment("vip") and not in_segment("churn-risk")')
    assert evaluate(rule, ProfileView(), NOW, segments)
    assert asked == ["vip", "churn-risk"]


def test_of_age_for_asks_the_injected_policy() -> None:
    asked: list[tuple[str, str | None]] = []

    def of_age(category: str, level: str | None) -> bool:
        asked.append((category, level))
        return category == "alcohol"

    profile = ProfileView(of_age=of_age)
    assert holds('of_age_for("alcohol")', profile)
    assert not holds('of_age_for("vape", level="database_check")', profile)
    assert asked == [("alcohol", None), ("vape", "database_check")]
    assert not holds('of_age_for("alcohol")', ProfileView())  # no policy: never of age


def test_age_counts_completed_years_on_the_utc_date() -> None:
    born = date(2004, 6, 15)
    assert holds("age = 21", ProfileView(dob=born))
    assert holds("age = 20", ProfileView(dob=date(2004, 6, 16)))
    late = datetime(2025, 6, 14, 23, 30, tzinfo=timezone(timedelta(hours=-5)))  # 15th in UTC
    assert holds("age >= 21", ProfileView(dob=born), now=late)
    assert holds("age exists", ProfileView(dob=born))
    assert holds("age not_exists", ProfileView())
    assert not holds("age != 3", ProfileView())
    future = ProfileView(dob=date(2025, 6, 16))
    assert holds("age not_exists", future)
    assert not holds("age >= 0", future)
    assert holds("age = 0", ProfileView(dob=NOW.date()))


def test_a_29_february_birthday_falls_on_1_march() -> None:
    leapling = ProfileView(dob=date(2004, 2, 29))
    assert holds("age = 20", leapling, now=datetime(2025, 2, 28, 12, tzinfo=UTC))
    assert holds("age = 21", leapling, now=datetime(2025, 3, 1, tzinfo=UTC))
    assert holds("age = 20", leapling, now=datetime(2024, 2, 29, tzinfo=UTC))


@given(st.dates(), st.dates())
def test_completed_years_agree_with_the_age_package(dob: date, on: date) -> None:
    from guestlist.age import age_on

    if on < dob:
        assert completed_years(dob, on) is None
    else:
        assert completed_years(dob, on) == age_on(dob, on)


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(parse_text("age exists"), ProfileView(), datetime(2025, 1, 1), NONE)


# -- logic and explain --------------------------------------------------------------


@given(rules(), profile_views(), memberships())
def test_logic_composes(rule: Rule, profile: ProfileView, segments: Memberships) -> None:
    held = evaluate(rule, profile, NOW, segments)
    assert evaluate(Not(rule), profile, NOW, segments) is not held
    assert evaluate(And((rule,)), profile, NOW, segments) is held
    assert evaluate(Or((rule,)), profile, NOW, segments) is held


@given(rules(), profile_views(), memberships())
def test_explain_agrees_with_evaluate_part_by_part(
    rule: Rule, profile: ProfileView, segments: Memberships
) -> None:
    from guestlist.segments.rules import walk

    lines = explain(rule, profile, NOW, segments)
    assert [line.path for line in lines] == [path for path, _ in walk(rule)]
    parts = dict(walk(rule))
    for line in lines:
        part = parts[line.path]
        assert line.held is evaluate(part, profile, NOW, segments)
        assert parse_text(line.condition) == part


def test_explain_lists_which_conditions_held() -> None:
    profile = ProfileView(traits={"city": "Austin"}, events=[("Order Completed", NOW - DAY, None)])
    rule = parse_text('trait.city = "Austin" and (count("Order Completed") >= 2 or age >= 21)')
    assert explain(rule, profile, NOW, NONE) == [
        Explained(
            "",
            'trait.city = "Austin" and (count("Order Completed") >= 2 or age >= 21)',
            False,
        ),
        Explained("/and/0", 'trait.city = "Austin"', True),
        Explained("/and/1", 'count("Order Completed") >= 2 or age >= 21', False),
        Explained("/and/1/or/0", 'count("Order Completed") >= 2', False),
        Explained("/and/1/or/1", "age >= 21", False),
    ]
