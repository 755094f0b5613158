"""The rule's JSON form: parsing, its errors with their paths, the round trip, cycles
between segments and cost limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given

from guestlist.segments.rules import (
    CATEGORY_ROOTS,
    CHANNELS,
    IDENTIFIER_TYPES,
    LEVELS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_EVENT_CONDITIONS,
    MAX_LIST_VALUES,
    MAX_NESTING,
    MAX_WHERE_FILTERS,
    PURPOSES,
    AgeCondition,
    And,
    ConsentCondition,
    EventCondition,
    EventFilter,
    IdentifierCondition,
    InSegment,
    Not,
    OfAgeFor,
    Or,
    Rule,
    RuleError,
    TraitCondition,
    check_cost,
    check_no_cycles,
    dependencies,
    parse_rule,
    rule_to_json,
    walk,
)
from tests.segments.strategies import rules

# The issue's audience: of age for alcohol, SMS consent, two or more orders in 90
# days, spent over $100, favourite category bourbon or tequila, not tagged vip-excluded.
AUDIENCE: dict[str, Any] = {
    "and": [
        {"of_age_for": "alcohol"},
        {"consent": "sms", "purpose": "marketing", "is": "granted"},
        {"event": "Order Completed", "within_days": 90, "agg": "count", "op": "gte", "value": 2},
        {"trait": "lifetime_spend", "op": "gt", "value": 100},
        {"trait": "favourite_category", "op": "in", "value": ["bourbon", "tequila"]},
        {"not": {"trait": "tags", "op": "contains", "value": "vip-excluded"}},
    ]
}


def _exact_json(data: Any) -> str:
    """JSON text, so that 2 and 2.0 (or 1 and true) are told apart."""
    return json.dumps(data, sort_keys=False)


def test_the_issues_audience_parses_to_typed_objects() -> None:
    rule = parse_rule(AUDIENCE)
    assert rule == And(
        (
            OfAgeFor("alcohol"),
            ConsentCondition("sms", "marketing", "granted"),
            EventCondition("Order Completed", "gte", 2, within_days=90),
            TraitCondition("lifetime_spend", "gt", 100),
            TraitCondition("favourite_category", "in", ("bourbon", "tequila")),
            Not(TraitCondition("tags", "contains", "vip-excluded")),
        )
    )
    assert rule_to_json(rule) == AUDIENCE


@given(rules())
def test_json_round_trip_is_exact(rule: Rule) -> None:
    data = json.loads(json.dumps(rule_to_json(rule)))  # through real JSON text
    again = parse_rule(data)
    assert again == rule
    assert _exact_json(rule_to_json(again)) == _exact_json(data)


def test_defaults_are_written_and_nulls_mean_absent() -> None:
    rule = parse_rule(
        {
            "event": "Order Completed",
            "within_days": None,
            "agg": None,
            "property": None,
            "where": None,
            "op": "gte",
            "value": 1,
        }
    )
    assert rule == EventCondition("Order Completed", "gte", 1)
    assert rule_to_json(rule) == {
        "event": "Order Completed",
        "agg": "count",
        "op": "gte",
        "value": 1,
    }
    assert rule_to_json(parse_rule({"consent": "email"})) == {
        "consent": "email",
        "purpose": "marketing",
        "is": "granted",
    }
    assert parse_rule({"trait": "email", "op": "exists", "value": None}) == TraitCondition(
        "email", "exists"
    )
    assert parse_rule({"of_age_for": "vape", "level": None}) == OfAgeFor("vape")
    assert parse_rule({"identifier": "phone", "op": "exists", "value": None}) == (
        IdentifierCondition("phone", "exists")
    )


def test_numbers_keep_their_kind() -> None:
    as_int = parse_rule({"trait": "score", "op": "eq", "value": 2})
    as_float = parse_rule({"trait": "score", "op": "eq", "value": 2.0})
    assert _exact_json(rule_to_json(as_int)) != _exact_json(rule_to_json(as_float))
    assert isinstance(rule_to_json(as_float)["value"], float)
    assert rule_to_json(parse_rule({"trait": "vip", "op": "eq", "value": True}))["value"] is True


def test_dated_and_listed_values() -> None:
    assert parse_rule({"trait": "signup_date", "op": "gte", "value": "2024-02-29"}) == (
        TraitCondition("signup_date", "gte", "2024-02-29")
    )
    rule = parse_rule({"trait": "score", "op": "not_in", "value": [1, 2.5, -3]})
    assert rule == TraitCondition("score", "not_in", (1, 2.5, -3))
    assert rule_to_json(rule)["value"] == [1, 2.5, -3]


_OK_TRAIT = {"trait": "city", "op": "eq", "value": "Austin"}
_OK_EVENT = {"event": "Order Completed", "op": "gte", "value": 2}

# (rule JSON, JSON pointer of the error, words its message must hold)
ERRORS: list[tuple[Any, str, str]] = [
    ([], "", "expected a rule (a JSON object), got a list"),
    ("trait", "", "expected a rule"),
    ({}, "", "a rule needs one of the keys"),
    ({"foo": 1}, "", "got keys: 'foo'"),
    ({"trait": "city", "event": "x"}, "", "exactly one of the keys"),
    ({**_OK_TRAIT, "extra": 1}, "/extra", "unknown key 'extra'; trait rules take the keys"),
    ({**_OK_TRAIT, "a/b~": 1}, "/a~1b~0", "unknown key 'a/b~'"),
    ({"and": []}, "/and", "and needs a non-empty list of rules"),
    ({"or": {"trait": "x"}}, "/or", "or needs a non-empty list"),
    (
        {"and": [_OK_TRAIT, _OK_TRAIT, {**_OK_EVENT, "within_days": 0}]},
        "/and/2/within_days",
        "1 to",
    ),
    ({**_OK_EVENT, "within_days": -3}, "/within_days", "whole number of days"),
    ({**_OK_EVENT, "within_days": 1.5}, "/within_days", "got the number 1.5"),
    ({**_OK_EVENT, "within_days": "90"}, "/within_days", "got the string '90'"),
    ({**_OK_EVENT, "within_days": True}, "/within_days", "got true"),
    ({**_OK_EVENT, "within_days": 36_501}, "/within_days", "36500"),
    ({"not": {"or": [{"trait": "city"}]}}, "/not/or/0/op", "missing op"),
    ({"trait": "city", "op": "like", "value": "x"}, "/op", "unknown operator 'like'"),
    ({"trait": "city", "op": 3, "value": "x"}, "/op", "operator is the number 3"),
    ({"trait": 3, "op": "exists"}, "/trait", "the trait name is a string"),
    ({"trait": "", "op": "exists"}, "/trait", "empty"),
    ({"trait": "firstName", "op": "exists"}, "/trait", "did you mean 'first_name'?"),
    ({"trait": "a" * 201, "op": "exists"}, "/trait", "longer than 200"),
    ({"trait": "city", "op": "eq", "value": ["Austin"]}, "/value", "eq compares with a string"),
    ({"trait": "city", "op": "eq", "value": {"a": 1}}, "/value", "got an object"),
    ({"trait": "city", "op": "eq", "value": None}, "/value", "use not_exists"),
    ({"trait": "city", "op": "ne"}, "/value", "ne needs a value"),
    ({"trait": "city", "op": "exists", "value": "x"}, "/value", "exists takes no value"),
    ({"trait": "city", "op": "not_exists", "value": False}, "/value", "takes no value"),
    ({"trait": "score", "op": "lt", "value": "abc"}, "/value", "a number or a date YYYY-MM-DD"),
    ({"trait": "score", "op": "gte", "value": "2024-02-30"}, "/value", "'2024-02-30'"),
    ({"trait": "score", "op": "gte", "value": "2024-1-1"}, "/value", "YYYY-MM-DD"),
    ({"trait": "score", "op": "gte", "value": "2024-01-01T00:00:00"}, "/value", "YYYY-MM-DD"),
    ({"trait": "score", "op": "gt", "value": True}, "/value", "got true"),
    ({"trait": "city", "op": "in", "value": []}, "/value", "got an empty list"),
    ({"trait": "city", "op": "in", "value": "Austin"}, "/value", "non-empty list"),
    ({"trait": "city", "op": "in", "value": ["a", 1]}, "/value/1", "not both"),
    ({"trait": "city", "op": "not_in", "value": [1, "a"]}, "/value/1", "not both"),
    ({"trait": "city", "op": "in", "value": [1, True]}, "/value/1", "got true"),
    ({"trait": "city", "op": "in", "value": [None]}, "/value/0", "got null"),
    ({"trait": "city", "op": "in", "value": [["a"]]}, "/value/0", "got a list"),
    ({"trait": "city", "op": "contains", "value": 3}, "/value", "non-empty string"),
    ({"trait": "city", "op": "starts_with", "value": ""}, "/value", "non-empty string"),
    ({"trait": "score", "op": "eq", "value": float("nan")}, "/value", "finite"),
    ({"trait": "score", "op": "gt", "value": float("inf")}, "/value", "finite"),
    ({"trait": "score", "op": "eq", "value": 2**53 + 1}, "/value", "±2^53"),
    ({"trait": "score", "op": "in", "value": [1, -(2**60)]}, "/value/1", "±2^53"),
    ({"trait": "city", "op": "eq", "value": "a\x00b"}, "/value", "NUL"),
    ({"trait": "city", "op": "eq", "value": "\ud800"}, "/value", "surrogates"),
    ({"consent": "fax"}, "/consent", "unknown channel 'fax'; expected one of: email, sms"),
    ({"consent": 5}, "/consent", "channel is the number 5"),
    ({"consent": "sms", "purpose": "sales"}, "/purpose", "unknown purpose 'sales'"),
    ({"consent": "sms", "is": "withdrawn"}, "/is", "granted, not_granted"),
    ({"consent": "sms", "status": "granted"}, "/status", "unknown key 'status'"),
    ({"age": 21}, "/age", '{"op": "gte", "value": 21}'),
    ({"age": {"op": "in", "value": [21]}}, "/age/op", "age takes eq ne lt lte gt gte"),
    ({"age": {"op": "gte", "value": -1}}, "/age/value", "whole years from 0 to 150"),
    ({"age": {"op": "gte", "value": 21.5}}, "/age/value", "21.5"),
    ({"age": {"op": "gte", "value": "21"}}, "/age/value", "the string '21'"),
    ({"age": {"op": "gte", "value": 151}}, "/age/value", "150"),
    ({"age": {"op": "gte"}}, "/age/value", "needs a value"),
    ({"age": {"op": "exists", "value": 3}}, "/age/value", "takes no value"),
    ({"age": {"op": "gte", "value": 21, "unit": "y"}}, "/age/unit", "unknown key 'unit'"),
    ({"of_age_for": "beer"}, "/of_age_for", "unknown category 'beer'"),
    ({"of_age_for": "Alcohol"}, "/of_age_for", "did you mean 'alcohol'?"),
    ({"of_age_for": "alcohol.Spirits"}, "/of_age_for", "unknown category"),
    ({"of_age_for": "alcohol..x"}, "/of_age_for", "unknown category"),
    ({"of_age_for": ["alcohol"]}, "/of_age_for", "a string such as 'alcohol'"),
    ({"of_age_for": "alcohol", "level": "passport"}, "/level", "unknown verification level"),
    ({"event": "", "op": "gte", "value": 1}, "/event", "the event name is empty"),
    ({"event": 5, "op": "gte", "value": 1}, "/event", "is a string"),
    ({**_OK_EVENT, "agg": "sum"}, "/property", "sum needs a property"),
    ({**_OK_EVENT, "agg": "median", "property": "total"}, "/agg", "unknown aggregate 'median'"),
    ({**_OK_EVENT, "property": "total"}, "/property", "count takes no property"),
    ({**_OK_EVENT, "agg": "avg", "property": "a..b"}, "/property", "plain dotted path"),
    ({**_OK_EVENT, "agg": "max", "property": "products[].price"}, "/property", "dotted path"),
    ({**_OK_EVENT, "agg": "max", "property": 3}, "/property", "is a string"),
    ({**_OK_EVENT, "op": "in", "value": [1]}, "/op", "an aggregate compares as a number"),
    ({**_OK_EVENT, "op": "exists"}, "/op", "an aggregate compares as a number"),
    ({**_OK_EVENT, "value": "2"}, "/value", "count compares with a number"),
    ({**_OK_EVENT, "value": None}, "/value", "needs a value"),
    ({"event": "x", "op": "gte"}, "/value", "needs a value"),
    ({"event": "x", "value": 1}, "/op", "missing op"),
    ({**_OK_EVENT, "where": {"property": "a"}}, "/where", "where needs a list of filters"),
    ({**_OK_EVENT, "where": ["category"]}, "/where/0", "a where filter is an object"),
    ({**_OK_EVENT, "where": [{"op": "exists"}]}, "/where/0/property", "needs a property"),
    (
        {**_OK_EVENT, "where": [{"property": "a", "op": "exists", "x": 1}]},
        "/where/0/x",
        "unknown key 'x'",
    ),
    (
        {**_OK_EVENT, "where": [{"property": "a", "op": "exists"}, {"property": "a", "op": "is"}]},
        "/where/1/op",
        "unknown operator 'is'",
    ),
    (
        {**_OK_EVENT, "where": [{"property": "a", "op": "in", "value": []}]},
        "/where/0/value",
        "empty",
    ),
    ({**_OK_EVENT, "where": [{"property": "a b", "op": "exists"}]}, "/where/0/property", "dotted"),
    ({"in_segment": "VIP"}, "/in_segment", "not a segment slug"),
    ({"in_segment": "-vip"}, "/in_segment", "not a segment slug"),
    ({"in_segment": "v" * 101}, "/in_segment", "at most 100"),
    ({"in_segment": None}, "/in_segment", "is a string"),
    ({"identifier": "passport", "op": "exists"}, "/identifier", "unknown identifier type"),
    ({"identifier": "phone", "op": "eq", "value": "1"}, "/op", "identifiers take exists or"),
    ({"identifier": "phone"}, "/op", "missing op"),
    ({"identifier": "phone", "op": "exists", "value": "1"}, "/value", "exists takes no value"),
]


@pytest.mark.parametrize(("data", "path", "words"), ERRORS)
def test_each_error_points_at_its_part(data: Any, path: str, words: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_rule(data)
    assert caught.value.path == path
    assert words in caught.value.message
    assert str(caught.value) == f"{path or 'rule'}: {caught.value.message}"


def test_absurd_nesting_is_refused_without_recursing_forever() -> None:
    data: Any = _OK_TRAIT
    for _ in range(MAX_NESTING + 5):
        data = {"not": data}
    with pytest.raises(RuleError, match="nest more than"):
        parse_rule(data)


def test_vocabularies_match_the_packages_they_come_from() -> None:
    from guestlist.age import VerificationLevel
    from guestlist.age.names import is_category
    from guestlist.consent.ledger import CHANNELS as LEDGER_CHANNELS
    from guestlist.consent.ledger import PURPOSES as LEDGER_PURPOSES

    assert tuple(LEDGER_CHANNELS) == CHANNELS
    assert tuple(LEDGER_PURPOSES) == PURPOSES
    assert tuple(level.value for level in VerificationLevel) == LEVELS
    for category in (*CATEGORY_ROOTS, "alcohol.spirits", "cannabis.edibles"):
        assert is_category(category)
        parse_rule({"of_age_for": category})
    assert IDENTIFIER_TYPES == ("email", "phone", "user_id", "anonymous_id", "external")


def test_canonical_trait_names_are_accepted() -> None:
    from guestlist.profiles.trait_names import RESERVED_TRAITS, canonical_trait_name

    for name in [*RESERVED_TRAITS, "Lifetime Spend", "orders_90d", "SKU-ID", "2fa"]:
        parse_rule({"trait": canonical_trait_name(name), "op": "exists"})


# -- walking and dependencies -------------------------------------------------------


def test_walk_gives_json_pointers_parents_first() -> None:
    rule = parse_rule({"or": [{"in_segment": "a"}, {"not": {"and": [{"in_segment": "b"}]}}]})
    assert [path for path, _ in walk(rule)] == [
        "",
        "/or/0",
        "/or/1",
        "/or/1/not",
        "/or/1/not/and/0",
    ]
    assert dependencies(rule) == {"a", "b"}
    assert dependencies(parse_rule(AUDIENCE)) == set()


# -- cycles -------------------------------------------------------------------------


def test_a_segment_using_itself_is_a_cycle() -> None:
    with pytest.raises(RuleError) as caught:
        check_no_cycles("a", And((_trait(), InSegment("a"))), lambda slug: None)
    assert caught.value.path == "/and/1"
    assert "a → a" in caught.value.message


def test_a_cycle_through_other_segments_is_named() -> None:
    stored: dict[str, Rule] = {"b": InSegment("c"), "c": Or((_trait(), InSegment("a")))}
    rule = And((_trait(), Not(InSegment("b"))))
    with pytest.raises(RuleError) as caught:
        check_no_cycles("a", rule, stored.get)
    assert caught.value.path == "/and/1/not"
    assert caught.value.message == "segments would form a cycle: a → b → c → a"


def test_the_new_rule_replaces_the_stored_one() -> None:
    # `a` used `b` before; now `b` uses `a`, and `a`'s new rule no longer uses `b`.
    stored: dict[str, Rule] = {"a": InSegment("b"), "b": InSegment("a")}
    check_no_cycles("a", _trait(), stored.get)
    with pytest.raises(RuleError, match="a → b → a"):
        check_no_cycles("a", InSegment("b"), stored.get)


def test_shared_segments_without_a_cycle_pass() -> None:
    stored: dict[str, Rule] = {"b": InSegment("d"), "c": InSegment("d"), "d": _trait()}
    seen: list[str] = []

    def lookup(slug: str) -> Rule | None:
        seen.append(slug)
        return stored.get(slug)

    check_no_cycles("a", And((InSegment("b"), InSegment("c"), InSegment("b"))), lookup)
    assert sorted(seen) == ["b", "c", "d"]  # each stored rule read once


def test_a_cycle_elsewhere_is_refused_too() -> None:
    stored: dict[str, Rule] = {"b": InSegment("c"), "c": InSegment("b")}
    with pytest.raises(RuleError) as caught:
        check_no_cycles("a", InSegment("b"), stored.get)
    assert caught.value.path == ""
    assert caught.value.message == "segments would form a cycle: b → c → b"


def test_unknown_segments_are_refused() -> None:
    with pytest.raises(RuleError) as caught:
        check_no_cycles("a", Or((_trait(), InSegment("gone"))), lambda slug: None)
    assert (caught.value.path, caught.value.message) == ("/or/1", "no segment 'gone'")
    stored: dict[str, Rule] = {"b": InSegment("gone")}
    with pytest.raises(RuleError, match="no segment 'gone' \\(used by 'b'\\)"):
        check_no_cycles("a", InSegment("b"), stored.get)


def test_long_chains_do_not_recurse() -> None:
    stored: dict[str, Rule] = {f"s{i}": InSegment(f"s{i + 1}") for i in range(5000)}
    stored["s5000"] = _trait()
    check_no_cycles("a", InSegment("s0"), stored.get)
    stored["s5000"] = InSegment("a")
    with pytest.raises(RuleError, match="a → s0 → s1 → "):
        check_no_cycles("a", InSegment("s0"), stored.get)


# -- cost ---------------------------------------------------------------------------


def _trait(i: int = 0) -> TraitCondition:
    return TraitCondition("score", "gt", i)


def _nested(depth: int) -> Rule:
    rule: Rule = _trait()
    for _ in range(depth):
        rule = Not(rule)
    return rule


def test_cost_limits_allow_up_to_the_limit() -> None:
    check_cost(parse_rule(AUDIENCE))
    check_cost(And(tuple(_trait(i) for i in range(MAX_CONDITIONS))))
    check_cost(_nested(MAX_DEPTH))
    check_cost(TraitCondition("score", "in", tuple(range(MAX_LIST_VALUES))))
    event = EventCondition("Order Completed", "gte", 1)
    check_cost(And((event,) * MAX_EVENT_CONDITIONS))
    filters = (EventFilter("total", "gt", 1),) * MAX_WHERE_FILTERS
    check_cost(EventCondition("Order Completed", "gte", 1, where=filters))


@pytest.mark.parametrize(
    ("rule", "path", "words"),
    [
        (
            And(tuple(_trait(i) for i in range(MAX_CONDITIONS + 1))),
            "",
            "at most 50 conditions, this one 51",
        ),
        (_nested(MAX_DEPTH + 1), "/not" * (MAX_DEPTH + 1), "at most 10 levels"),
        (
            Or((_trait(), TraitCondition("score", "not_in", tuple(range(MAX_LIST_VALUES + 1))))),
            "/or/1/value",
            "at most 1000 values, this one 1001",
        ),
        (
            EventCondition(
                "Order Completed",
                "gte",
                1,
                where=(EventFilter("a", "exists"), EventFilter("b", "in", ("x",) * 1001)),
            ),
            "/where/1/value",
            "at most 1000 values",
        ),
        (
            EventCondition("x", "gte", 1, where=(EventFilter("a", "exists"),) * 11),
            "/where",
            "at most 10 where filters",
        ),
        (
            And((EventCondition("x", "gte", 1),) * (MAX_EVENT_CONDITIONS + 1)),
            "",
            "at most 10 event conditions, this one 11",
        ),
    ],
)
def test_cost_limits_refuse_beyond_the_limit(rule: Rule, path: str, words: str) -> None:
    with pytest.raises(RuleError) as caught:
        check_cost(rule)
    assert caught.value.path == path
    assert words in caught.value.message


def test_objects_are_immutable_and_hashable() -> None:
    rule = parse_rule(AUDIENCE)
    assert isinstance(rule, And)
    with pytest.raises(AttributeError):
        rule.rules = ()  # type: ignore[misc]
    assert hash(rule) == hash(parse_rule(AUDIENCE))
    assert TraitCondition("a", "in", ("x",)).value_set == frozenset({"x"})
    assert AgeCondition("exists") != AgeCondition("not_exists")
