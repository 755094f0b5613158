"""The rule's text form: the grammar, printing back, and errors with line and column."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from guestlist.segments.rules import (
    And,
    ConsentCondition,
    EventCondition,
    EventFilter,
    Not,
    OfAgeFor,
    Or,
    Rule,
    RuleError,
    TraitCondition,
    parse_rule,
    rule_to_json,
)
from guestlist.segments.text import RuleSyntaxError, parse_text, text_to_json, to_text
from tests.segments.strategies import rules
from tests.segments.test_rules import AUDIENCE

ISSUE_EXAMPLE = (
    'of_age_for("alcohol") and consent.sms is granted and count("Order Completed" within 90d) >= 2'
)
AUDIENCE_TEXT = (
    'of_age_for("alcohol") and consent.sms is granted'
    ' and count("Order Completed" within 90d) >= 2 and trait.lifetime_spend > 100'
    ' and trait.favourite_category in ["bourbon", "tequila"]'
    ' and not trait.tags contains "vip-excluded"'
)


def _exact(rule: Rule) -> str:
    return json.dumps(rule_to_json(rule))


def test_the_issues_example() -> None:
    assert text_to_json(ISSUE_EXAMPLE) == {
        "and": [
            {"of_age_for": "alcohol"},
            {"consent": "sms", "purpose": "marketing", "is": "granted"},
            {
                "event": "Order Completed",
                "within_days": 90,
                "agg": "count",
                "op": "gte",
                "value": 2,
            },
        ]
    }
    assert to_text(parse_text(ISSUE_EXAMPLE)) == ISSUE_EXAMPLE


def test_the_issues_audience_in_both_forms() -> None:
    assert parse_text(AUDIENCE_TEXT) == parse_rule(AUDIENCE)
    assert to_text(parse_rule(AUDIENCE)) == AUDIENCE_TEXT


@given(rules())
def test_text_round_trip_is_exact(rule: Rule) -> None:
    text = to_text(rule)
    again = parse_text(text)
    assert again == rule
    assert _exact(again) == _exact(rule)
    assert to_text(again) == text


# (text, the JSON it stands for)
FORMS: list[tuple[str, Any]] = [
    ("trait.lifetime_spend > 100", {"trait": "lifetime_spend", "op": "gt", "value": 100}),
    ("trait.lifetime_spend >= 99.5", {"trait": "lifetime_spend", "op": "gte", "value": 99.5}),
    ("trait.score < -1e3", {"trait": "score", "op": "lt", "value": -1000.0}),
    ("trait.score <= 2E-2", {"trait": "score", "op": "lte", "value": 0.02}),
    ('trait.city = "Austin"', {"trait": "city", "op": "eq", "value": "Austin"}),
    ('trait.city == "Austin"', {"trait": "city", "op": "eq", "value": "Austin"}),
    ('trait.city eq "Austin"', {"trait": "city", "op": "eq", "value": "Austin"}),
    ('trait.city != "Austin"', {"trait": "city", "op": "ne", "value": "Austin"}),
    ("trait.vip = true", {"trait": "vip", "op": "eq", "value": True}),
    ("trait.vip ne false", {"trait": "vip", "op": "ne", "value": False}),
    (
        'trait.city in ["Austin", "Dallas"]',
        {"trait": "city", "op": "in", "value": ["Austin", "Dallas"]},
    ),
    ("trait.score not in [1, 2]", {"trait": "score", "op": "not_in", "value": [1, 2]}),
    ("trait.score not_in [1]", {"trait": "score", "op": "not_in", "value": [1]}),
    ("trait.email exists", {"trait": "email", "op": "exists"}),
    ("trait.email not exists", {"trait": "email", "op": "not_exists"}),
    ("trait.email not_exists", {"trait": "email", "op": "not_exists"}),
    ('trait.name starts_with "A"', {"trait": "name", "op": "starts_with", "value": "A"}),
    ('trait.tags contains "gift"', {"trait": "tags", "op": "contains", "value": "gift"}),
    (
        'trait.signup_date >= "2024-01-31"',
        {"trait": "signup_date", "op": "gte", "value": "2024-01-31"},
    ),
    ("trait.age >= 21", {"trait": "age", "op": "gte", "value": 21}),
    ("trait.count exists", {"trait": "count", "op": "exists"}),
    ("trait.2fa = true", {"trait": "2fa", "op": "eq", "value": True}),
    ("age >= 21", {"age": {"op": "gte", "value": 21}}),
    ("age not exists", {"age": {"op": "not_exists"}}),
    ("consent.sms is granted", {"consent": "sms", "purpose": "marketing", "is": "granted"}),
    (
        "consent.email is not granted",
        {"consent": "email", "purpose": "marketing", "is": "not_granted"},
    ),
    (
        "consent.email.sale_sharing is not_granted",
        {"consent": "email", "purpose": "sale_sharing", "is": "not_granted"},
    ),
    ('of_age_for("alcohol.spirits")', {"of_age_for": "alcohol.spirits"}),
    (
        'of_age_for("vape", level="database_check")',
        {"of_age_for": "vape", "level": "database_check"},
    ),
    ('in_segment("vip")', {"in_segment": "vip"}),
    ("identifier.phone exists", {"identifier": "phone", "op": "exists"}),
    ("identifier.email not exists", {"identifier": "email", "op": "not_exists"}),
    (
        'count("Order Completed") > 0',
        {"event": "Order Completed", "agg": "count", "op": "gt", "value": 0},
    ),
    (
        'sum("Order Completed".total within 365d) > 100',
        {
            "event": "Order Completed",
            "within_days": 365,
            "agg": "sum",
            "property": "total",
            "op": "gt",
            "value": 100,
        },
    ),
    (
        'avg("Order Completed".shipping.cost) <= 9.99',
        {
            "event": "Order Completed",
            "agg": "avg",
            "property": "shipping.cost",
            "op": "lte",
            "value": 9.99,
        },
    ),
    (
        'count("Order Completed" where category = "bourbon" within 90d) >= 2',
        {
            "event": "Order Completed",
            "within_days": 90,
            "agg": "count",
            "where": [{"property": "category", "op": "eq", "value": "bourbon"}],
            "op": "gte",
            "value": 2,
        },
    ),
    (
        'max("Order Completed".total where category in ["bourbon", "tequila"]'
        ' and coupon not exists and shipping.country = "US") > 50',
        {
            "event": "Order Completed",
            "agg": "max",
            "property": "total",
            "where": [
                {"property": "category", "op": "in", "value": ["bourbon", "tequila"]},
                {"property": "coupon", "op": "not_exists"},
                {"property": "shipping.country", "op": "eq", "value": "US"},
            ],
            "op": "gt",
            "value": 50,
        },
    ),
    # property names that are keywords elsewhere stay names where a name is expected
    (
        'count("x" where in = 1 and within exists and and = "a" within 3d) = 1',
        {
            "event": "x",
            "within_days": 3,
            "agg": "count",
            "where": [
                {"property": "in", "op": "eq", "value": 1},
                {"property": "within", "op": "exists"},
                {"property": "and", "op": "eq", "value": "a"},
            ],
            "op": "eq",
            "value": 1,
        },
    ),
    ('all(in_segment("vip"))', {"and": [{"in_segment": "vip"}]}),
    (
        'any(in_segment("a"), in_segment("b"))',
        {"or": [{"in_segment": "a"}, {"in_segment": "b"}]},
    ),
]


@pytest.mark.parametrize(("text", "data"), FORMS)
def test_each_form_reads_as_its_json(text: str, data: Any) -> None:
    assert text_to_json(text) == data
    rule = parse_rule(data)
    assert parse_text(to_text(rule)) == rule


def test_precedence_is_not_then_and_then_or() -> None:
    a, b, c = (TraitCondition(n, "exists") for n in ("a", "b", "c"))
    assert parse_text("trait.a exists or trait.b exists and trait.c exists") == Or((a, And((b, c))))
    assert parse_text("trait.a exists and trait.b exists or trait.c exists") == Or((And((a, b)), c))
    assert parse_text("not trait.a exists and trait.b exists") == And((Not(a), b))
    assert parse_text("not (trait.a exists and trait.b exists)") == Not(And((a, b)))
    assert parse_text("not not trait.a exists") == Not(Not(a))
    assert parse_text("(trait.a exists or trait.b exists) and trait.c exists") == And(
        (Or((a, b)), c)
    )


def test_parentheses_keep_the_rules_shape() -> None:
    a, b, c = (TraitCondition(n, "exists") for n in ("a", "b", "c"))
    flat = parse_text("trait.a exists and trait.b exists and trait.c exists")
    nested = parse_text("(trait.a exists and trait.b exists) and trait.c exists")
    assert flat == And((a, b, c))
    assert nested == And((And((a, b)), c))
    assert to_text(nested) == "(trait.a exists and trait.b exists) and trait.c exists"
    assert parse_text("((trait.a exists))") == a
    assert to_text(Or((a, Or((b, c))))) == "trait.a exists or (trait.b exists or trait.c exists)"
    assert to_text(Or((And((a, b)), c))) == "trait.a exists and trait.b exists or trait.c exists"


def test_whitespace_and_lines_are_free() -> None:
    text = (
        '\n  of_age_for( "alcohol" )\n\tand consent . sms is granted and   count(\n'
        '"Order Completed"\nwithin 90d )>=2\n'
    )
    assert parse_text(text) == parse_text(ISSUE_EXAMPLE)


def test_string_escapes() -> None:
    rule = parse_text(r'trait.name = "say \"hi\" \\ \n\t\u00e9\ud83d\ude00 /\/"')
    assert isinstance(rule, TraitCondition)
    assert rule.value == 'say "hi" \\ \n\té😀 //'
    assert parse_text(to_text(rule)) == rule
    control = TraitCondition("name", "eq", "a\x01b\x7f\u2028")
    assert parse_text(to_text(control)) == control


def test_numbers_keep_their_kind_through_text() -> None:
    for value in (2, 2.0, -0.0, 1e16, 5e-324, 1.7976931348623157e308, 2**53, -(2**53)):
        rule = TraitCondition("score", "eq", value)
        assert _exact(parse_text(to_text(rule))) == _exact(rule)


# (text, line, column, words the message must hold)
SYNTAX_ERRORS: list[tuple[str, int, int, str]] = [
    ("", 1, 1, "unexpected end of the rule; expected a condition"),
    ("   \n  ", 2, 3, "unexpected end of the rule"),
    ("trait.city", 1, 11, "expected an operator"),
    ("trait.city = ", 1, 13, "eq needs a value"),
    ('trait.city = "Austin', 1, 14, "a string that is not closed"),
    (r'trait.city = "a\qb"', 1, 14, "bad escape"),
    ("age >= 21 and", 1, 14, "expected a condition"),
    ("age >= 21 and\n\n  or age < 3", 3, 3, "unexpected 'or'; expected a condition"),
    ("foo", 1, 1, "unexpected 'foo'; expected a condition"),
    ("trait.a = 1 order", 1, 13, "unexpected 'order'; expected 'and', 'or' or the end of the rule"),
    ("(((trait.a = 1)", 1, 16, "expected ')'"),
    ("trait.a = 1)", 1, 12, "unexpected ')'; expected"),
    ("trait.a @ 1", 1, 9, "unexpected character '@'; expected an operator"),
    ('count("x" within 90) > 1', 1, 18, "expected a number of days such as 90d"),
    ('count("x" within 90 d) > 1', 1, 18, "a number of days"),
    ("count(x) > 1", 1, 7, "expected a string in double quotes"),
    ('count("x" within 3d where a = 1) > 1', 1, 21, "unexpected 'where'"),
    ("consent.sms granted", 1, 13, "expected 'is'"),
    ('of_age_for("vape", "id_document")', 1, 20, "expected 'level'"),
    ("trait.a in [1, 2", 1, 17, "expected"),
    ("trait.a in [1,, 2]", 1, 15, "unexpected ','"),
    ("trait.a = 1 trait.b = 2", 1, 13, "unexpected 'trait'; expected 'and', 'or' or the end"),
]


@pytest.mark.parametrize(("text", "line", "column", "words"), SYNTAX_ERRORS)
def test_syntax_errors_give_line_and_column(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse_text(text)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    assert words in error.message
    assert str(error) == f"line {line}, column {column}: {error.message}"


# Text that parses but holds a value the rule refuses: the same checks as the JSON
# form, placed on the offending token. (text, line, column, JSON pointer, words)
VALUE_ERRORS: list[tuple[str, int, int, str, str]] = [
    ("trait.firstName = 1", 1, 7, "/trait", "did you mean 'first_name'?"),
    ('count("Order Completed" within 0d) >= 2', 1, 32, "/within_days", "from 1 to 36500"),
    ("consent.fax is granted", 1, 9, "/consent", "unknown channel 'fax'"),
    ("consent.sms.sales is granted", 1, 13, "/purpose", "unknown purpose 'sales'"),
    ("consent.sms is withdrawn", 1, 16, "/is", "granted, not_granted"),
    ("trait.a in []", 1, 12, "/value", "non-empty list"),
    ('trait.a exists and trait.b in [1, "x"]', 1, 35, "/and/1/value/1", "not both"),
    ('of_age_for("beer")', 1, 12, "/of_age_for", "unknown category 'beer'"),
    ('of_age_for("vape", level="passport")', 1, 26, "/level", "unknown verification level"),
    ('sum("x") > 1', 1, 8, "/property", "sum needs a property"),
    ('count("x".total) > 1', 1, 11, "/property", "count takes no property"),
    ('trait.a < "abc"', 1, 11, "/value", "a number or a date YYYY-MM-DD"),
    ("trait.a = 1 and\n  (trait.b exists 3)", 2, 19, "/and/1/value", "exists takes no value"),
    ("age >= 21.5", 1, 8, "/age/value", "whole years"),
    ('count("x") >= "a"', 1, 15, "/value", "count compares with a number"),
    ('count("x") in [1]', 1, 12, "/op", "an aggregate compares as a number"),
    ("identifier.phone = 1", 1, 18, "/op", "identifiers take exists or not_exists"),
    ("identifier.passport exists", 1, 12, "/identifier", "unknown identifier type"),
    ('in_segment("VIP")', 1, 12, "/in_segment", "not a segment slug"),
    ("trait.a = null", 1, 11, "/value", "use not_exists"),
    ('trait.a = "\\u0000"', 1, 11, "/value", "NUL"),
    ("trait.a = 1e400", 1, 11, "/value", "finite"),
    ("trait.a = 9007199254740993", 1, 11, "/value", "±2^53"),
    ('count("x" where a b = 1) > 1', 1, 19, "", "unexpected 'b'; expected an operator"),
    ('count("x" where a..b = 1) > 1', 1, 19, "", "unexpected '.'; expected a name"),
    ('count("" ) > 1', 1, 7, "/event", "the event name is empty"),
]


@pytest.mark.parametrize(("text", "line", "column", "path", "words"), VALUE_ERRORS)
def test_refused_values_are_placed_on_their_token(
    text: str, line: int, column: int, path: str, words: str
) -> None:
    with pytest.raises(RuleSyntaxError) as caught:
        parse_text(text)
    error = caught.value
    assert (error.line, error.column) == (line, column), str(error)
    assert error.path == path
    assert words in error.message


def test_a_syntax_error_is_a_rule_error_with_a_snippet() -> None:
    with pytest.raises(RuleError) as caught:
        parse_text("age >= 21 and\n  trait.x @ 3")
    assert isinstance(caught.value, RuleSyntaxError)
    assert caught.value.snippet == "  trait.x @ 3\n          ^"
    assert "an operator" in caught.value.expected[0]


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = "(" * 5000 + "trait.a exists" + ")" * 5000
    assert parse_text(deep) == TraitCondition("a", "exists")  # parentheses alone add nothing
    with pytest.raises(RuleSyntaxError, match="nest more than 64"):
        parse_text("not " * 5000 + "trait.a exists")
    with pytest.raises(RuleSyntaxError, match="nest more than 64"):
        parse_text("(trait.a exists and " * 100 + "trait.b exists" + ")" * 100)


def test_long_flat_rules_parse() -> None:
    text = " and ".join(f"trait.score != {i}" for i in range(3000))
    rule = parse_text(text)
    assert isinstance(rule, And)
    assert len(rule.rules) == 3000


@given(st.text(max_size=40))
def test_any_text_is_a_rule_or_a_syntax_error(text: str) -> None:
    try:
        parse_text(text)
    except RuleSyntaxError as error:
        assert error.line >= 1
        assert error.column >= 1


@given(rules(max_leaves=4), st.data())
@example(rule=TraitCondition("a", "exists"), data=None)
def test_damaged_rules_are_rules_or_syntax_errors(rule: Rule, data: st.DataObject | None) -> None:
    text = to_text(rule)
    if data is not None:
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        insert = data.draw(st.sampled_from(["", "(", ")", '"', "not ", "and", ",", "[", "\\", "1"]))
        text = text[:at] + insert + text[at + cut :]
    try:
        parse_text(text)
    except RuleSyntaxError as error:
        assert 1 <= error.line <= text.count("\n") + 1
        assert error.column >= 1


def test_printing_covers_every_construct() -> None:
    rule = And(
        (
            OfAgeFor("vape", "database_check"),
            ConsentCondition("whatsapp", "transactional", "not_granted"),
            EventCondition(
                "Order Completed",
                "gt",
                100,
                within_days=365,
                agg="sum",
                property="total",
                where=(EventFilter("category", "in", ("bourbon",)), EventFilter("gift", "exists")),
            ),
            Or((TraitCondition("city", "eq", "Austin"),)),
        )
    )
    assert to_text(rule) == (
        'of_age_for("vape", level="database_check")'
        " and consent.whatsapp.transactional is not_granted"
        ' and sum("Order Completed".total where category in ["bourbon"] and gift exists'
        " within 365d) > 100"
        ' and any(trait.city = "Austin")'
    )
