"""A segment rule evaluated for one profile, in memory.

This module is the definition of what a rule means: the SQL compiler must agree with
it on every profile (a differential test holds the two to that). docs/segments.md
states the same semantics in words; change both together.

It knows nothing of the database or of the age policy: the caller loads a
`ProfileView` and injects `of_age`, whose answers come from `guestlist.age`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any, Final, NamedTuple, TypeGuard, assert_never

from guestlist.segments.rules import (
    AgeCondition,
    And,
    ConsentCondition,
    EventCondition,
    IdentifierCondition,
    InSegment,
    Not,
    Number,
    OfAgeFor,
    Op,
    Or,
    Rule,
    TraitCondition,
    Value,
    exact_number,
)
from guestlist.segments.text import to_text

# Sums are exact: no precision a sum of JSON numbers can need is ever reached.
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
# A date, or a date-time whose first ten characters are its date (as written).
_DATE_PREFIX: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ].*)?", re.DOTALL)


class ProfileEvent(NamedTuple):
    """One of the profile's track events; plain `(name, timestamp, properties)`
    tuples serve as well."""

    name: str
    timestamp: datetime  # timezone-aware
    properties: Mapping[str, Any] | None = None


def _never_of_age(category: str, level: str | None) -> bool:
    return False


@dataclass(frozen=True)
class ProfileView:
    """What a rule can see of one profile.

    `traits` hold values as stored JSON (a missing key and null are both "no value");
    `identifiers` the keys per identifier type; `events` the profile's track events;
    `consent` the current status per (channel, purpose), as the consent package
    derives it (`granted`, `withdrawn`, `denied`, `expired`, `pending`, `unknown`…).
    `dob`, `verification_level` and `jurisdiction` are the age facts; `of_age(category,
    level)` answers `of_age_for` (level None: the category's marketing default) and
    by default answers no.
    """

    traits: Mapping[str, Any] = field(default_factory=dict)
    identifiers: Mapping[str, AbstractSet[str]] = field(default_factory=dict)
    events: Sequence[tuple[str, datetime, Mapping[str, Any] | None]] = ()
    consent: Mapping[tuple[str, str], str] = field(default_factory=dict)
    dob: date | None = None
    verification_level: str | None = None
    jurisdiction: str | None = None
    of_age: Callable[[str, str | None], bool] = _never_of_age


class Explained(NamedTuple):
    """One part of a rule: its JSON pointer, its text, and whether it held."""

    path: str
    condition: str
    held: bool


def evaluate(
    rule: Rule, profile: ProfileView, now: datetime, segments: Callable[[str], bool]
) -> bool:
    """Whether `profile` matches `rule` at `now` (timezone-aware); `segments(slug)`
    answers in_segment."""
    return _Evaluation(profile, now, segments).holds(rule)


def explain(
    rule: Rule, profile: ProfileView, now: datetime, segments: Callable[[str], bool]
) -> list[Explained]:
    """Every part of `rule`, parents before children, with whether it held for
    `profile`; the first entry is the whole rule and agrees with `evaluate`."""
    out: list[Explained] = []
    _Evaluation(profile, now, segments).explain(rule, "", out)
    return out


class _Evaluation:
    """One profile at one instant; the age is worked out once."""

    def __init__(
        self, profile: ProfileView, now: datetime, segments: Callable[[str], bool]
    ) -> None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now must be timezone-aware, got the naive {now.isoformat()}")
        self.profile = profile
        self.now = now
        self.segments = segments
        self._age: int | None = None
        self._age_known = False

    def holds(self, rule: Rule) -> bool:
        match rule:
            case And():
                return all(self.holds(r) for r in rule.rules)
            case Or():
                return any(self.holds(r) for r in rule.rules)
            case Not():
                return not self.holds(rule.rule)
            case TraitCondition():
                actual = self.profile.traits.get(rule.trait)
                return compare(rule.op, rule.value, rule.value_set, actual)
            case ConsentCondition():
                status = self.profile.consent.get((rule.channel, rule.purpose))
                return (status == "granted") == (rule.is_ == "granted")
            case AgeCondition():
                age = self.age()
                if rule.op == "exists":
                    return age is not None
                if rule.op == "not_exists":
                    return age is None
                return (
                    age is not None
                    and rule.value is not None
                    and _ordered(rule.op, age, rule.value)
                )
            case OfAgeFor():
                return bool(self.profile.of_age(rule.category, rule.level))
            case EventCondition():
                return self.event(rule)
            case InSegment():
                return bool(self.segments(rule.slug))
            case IdentifierCondition():
                held = bool(self.profile.identifiers.get(rule.type))
                return held if rule.op == "exists" else not held
            case _:
                assert_never(rule)

    def explain(self, rule: Rule, path: str, out: list[Explained]) -> bool:
        at = len(out)
        match rule:
            case And() | Or():
                key = "and" if isinstance(rule, And) else "or"
                results = [
                    self.explain(child, f"{path}/{key}/{i}", out)
                    for i, child in enumerate(rule.rules)
                ]
                held = all(results) if isinstance(rule, And) else any(results)
            case Not():
                held = not self.explain(rule.rule, f"{path}/not", out)
            case _:
                held = self.holds(rule)
        out.insert(at, Explained(path, to_text(rule), held))
        return held

    def age(self) -> int | None:
        """Completed years on today's UTC date; None without a date of birth or with
        one after today."""
        if not self._age_known:
            dob = self.profile.dob
            today = self.now.astimezone(UTC).date()
            self._age = None if dob is None else completed_years(dob, today)
            self._age_known = True
        return self._age

    def event(self, rule: EventCondition) -> bool:
        cutoff = None if rule.within_days is None else self.now - timedelta(days=rule.within_days)
        steps = None if rule.property is None else rule.property.split(".")
        filters: list[_Filter] = [
            (f.op, f.value, f.value_set, f.property.split(".")) for f in rule.where
        ]
        count = 0
        values: list[Decimal] = []
        for name, timestamp, properties in self.profile.events:
            if name != rule.event or (cutoff is not None and timestamp < cutoff):
                continue
            props = properties or {}
            if filters and not _passes(filters, props):
                continue
            count += 1
            if steps is not None:
                found = _at_path(props, steps)
                if _is_number(found):
                    values.append(exact_number(found))
        target = exact_number(rule.value)
        match rule.agg:
            case "count":
                return _ordered(rule.op, Decimal(count), target)
            case "sum":
                return _ordered(rule.op, _sum(values), target)
            case "avg":  # mean op v  ⇔  sum op v·n (n > 0): exact, no division
                return bool(values) and _ordered(
                    rule.op, _sum(values), _EXACT.multiply(target, Decimal(len(values)))
                )
            case "min":
                return bool(values) and _ordered(rule.op, min(values), target)
            case "max":
                return bool(values) and _ordered(rule.op, max(values), target)
            case _:
                assert_never(rule.agg)


_Filter = tuple[Op, Value, frozenset[str] | frozenset[Decimal] | None, list[str]]


def _passes(filters: list[_Filter], properties: Mapping[str, Any]) -> bool:
    for op, value, value_set, steps in filters:
        if not compare(op, value, value_set, _at_path(properties, steps)):
            return False
    return True


def compare(
    op: Op,
    expected: Value,
    value_set: frozenset[str] | frozenset[Decimal] | None,
    actual: Any,
) -> bool:
    """A trait or event property (`actual`, as stored JSON; None when absent)
    compared with a rule's value by `op`, as docs/segments.md defines it."""
    if actual is None:
        return op == "not_exists"
    match op:
        case "exists":
            return True
        case "not_exists":
            return False
        case "eq":
            return _equal(actual, expected)
        case "ne":
            return not _equal(actual, expected)
        case "in":
            return _member(actual, value_set)
        case "not_in":
            return not _member(actual, value_set)
        case "contains":
            if isinstance(actual, str):
                return isinstance(expected, str) and expected in actual
            if isinstance(actual, list):
                return any(isinstance(item, str) and item == expected for item in actual)
            return False
        case "starts_with":
            return (
                isinstance(actual, str)
                and isinstance(expected, str)
                and actual.startswith(expected)
            )
        case "lt" | "lte" | "gt" | "gte":
            if isinstance(expected, str):  # a date YYYY-MM-DD
                day = date_part(actual)
                return day is not None and _ordered(op, day, expected)
            if _is_number(actual) and _is_number(expected):
                return _ordered(op, exact_number(actual), exact_number(expected))
            return False
        case _:
            assert_never(op)


def date_part(value: Any) -> str | None:
    """The `YYYY-MM-DD` a stored string starts with, when it is a date or a date-time
    (`2024-05-01`, `2024-05-01T10:00:00Z`, `2024-05-01 10:00`); None otherwise."""
    if isinstance(value, str) and _DATE_PREFIX.fullmatch(value):
        return value[:10]
    return None


def completed_years(dob: date, on: date) -> int | None:
    """Whole years from `dob` to `on`; a 29 February birthday falls on 1 March in
    other years (as `guestlist.age.age_on` counts by default). None if `on` < `dob`."""
    if on < dob:
        return None
    years = on.year - dob.year
    birthday = (dob.month, dob.day)
    if birthday == (2, 29) and not _is_leap(on.year):
        birthday = (3, 1)
    if (on.month, on.day) < birthday:
        years -= 1
    return years


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _equal(actual: Any, expected: Value) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(actual, bool) and actual is expected
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    if _is_number(actual) and _is_number(expected):
        return exact_number(actual) == exact_number(expected)
    return False


def _member(actual: Any, value_set: frozenset[str] | frozenset[Decimal] | None) -> bool:
    if not value_set:
        return False
    if isinstance(actual, str):
        return actual in value_set
    if _is_number(actual):
        return exact_number(actual) in value_set
    return False


def _ordered(op: str, left: Any, right: Any) -> bool:
    match op:
        case "eq":
            return bool(left == right)
        case "ne":
            return bool(left != right)
        case "lt":
            return bool(left < right)
        case "lte":
            return bool(left <= right)
        case "gt":
            return bool(left > right)
        case "gte":
            return bool(left >= right)
    raise ValueError(f"not an ordering operator: {op}")


def _sum(values: list[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = _EXACT.add(total, value)
    return total


def _at_path(properties: Mapping[str, Any], steps: list[str]) -> Any:
    current: Any = properties
    for step in steps:
        if isinstance(current, dict | Mapping):  # dict first: the common, fast case
            current = current.get(step)
        else:
            return None
    return current


def _is_number(value: Any) -> TypeGuard[Number]:
    """A JSON number: not a bool, and finite (NaN and infinities are not JSON)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
