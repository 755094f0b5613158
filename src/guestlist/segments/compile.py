"""Segment rules compiled to one SQL query that runs inside the database.

`compile_rule` turns a rule into a SQLAlchemy Core SELECT of the ids of the live
profiles (not merged away, not erased) that match it. The same statement runs on
SQLite and on PostgreSQL, and it agrees with `guestlist.segments.evaluate` on every
profile (docs/segments.md, "How rules run in the database"; the differential test in
tests/segments/test_compile_differential.py holds the two together).

Three habits make the SQL exact:

- Every condition compiles to an expression that is true or false, never NULL:
  EXISTS / NOT EXISTS over the profile's rows, aggregates that cannot be NULL, and
  CASE around those that can. NOT, AND and OR are then the evaluator's two-valued
  logic, whatever is absent.
- A JSON value's type is tested before the value is compared, through the small
  constructs below, each with one rendering per database (`json_type` /
  `json_extract` / `json_each` on SQLite, `jsonb_typeof` / `#>` / `@>` on PostgreSQL).
- What depends only on `now` and the age table (the latest date of birth that is of
  age, per jurisdiction) is worked out here, in Python, and reaches the database as
  plain dates.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, assert_never

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnClause,
    ColumnElement,
    Exists,
    Numeric,
    Select,
    String,
    Table,
    TableClause,
    and_,
    case,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import FromClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import NullType, TypeEngine

from guestlist.age import (
    AgePolicy,
    AgeRule,
    RuleStatus,
    RuleType,
    VerificationLevel,
    default_policy,
    of_age_on,
    required_level_for,
)
from guestlist.age.names import is_jurisdiction
from guestlist.segments.evaluate import completed_years
from guestlist.segments.fact_specs import (
    ConsentFact,
    EventFact,
    Fact,
    OfAgeFact,
    TraitFact,
    event_facts,
    facts_of,
)
from guestlist.segments.rules import (
    SAFE_INTEGER,
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
    RuleError,
    TraitCondition,
    Value,
    exact_number,
    walk,
)
from guestlist.store.tables import age_state, consent_state, events, identifiers, profiles, traits
from guestlist.store.types import UtcDateTime

__all__ = [
    "FOREVER",
    "Facts",
    "LatestDobs",
    "compile_rule",
    "fact_value",
    "index_columns",
    "latest_dobs_of_age",
]

_ONE_DAY: Final = timedelta(days=1)
FOREVER: Final = datetime(9999, 12, 31, tzinfo=UTC)  # consent granted with no expiry


@dataclass(frozen=True)
class Facts:
    """`profile_facts` as the compiler may read it (segments.facts): the table, and
    the columns every row holds, by fact key (segments.fact_specs). Every live profile
    has a row, exact while `fresh_from <= now < fresh_until`."""

    table: TableClause
    columns: Mapping[str, ColumnElement[Any]]

    def column(self, fact: Fact) -> ColumnElement[Any] | None:
        return self.columns.get(fact.key)

    def name(self, fact: Fact) -> str | None:
        found = self.columns.get(fact.key)
        return None if found is None else found.key


def compile_rule(
    rule: Rule,
    *,
    now: datetime,
    resolve_segment: Callable[[str], Rule],
    policy: AgePolicy | None = None,
    facts: Facts | None = None,
) -> Select[Any]:
    """SELECT the ids (column `id`) of the live profiles matching `rule` at `now`.

    `now` must be timezone-aware: event windows, consent expiry, `age` and
    `of_age_for` are judged at it, so the statement is for that instant only.
    `resolve_segment(slug)` gives the stored rule of a segment `in_segment` uses; its
    rule is inlined (a cycle raises RuleError, though `check_no_cycles` refuses them
    before a rule is stored). `policy` is the age table (the shipped one by default).

    With `facts`, the profiles whose facts row is fresh at `now` are judged on that
    row (one scan, the conditions cheapest first, a windowed count driven from the
    events it needs), and the few whose row is not on their own rows, as without.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got the naive {now.isoformat()}")
    policy = policy or default_policy()
    by_rows = _Compiler(now, resolve_segment, policy).predicate(rule)
    live = (profiles.c.merged_into.is_(None), profiles.c.erased_at.is_(None))
    if facts is None:
        return select(profiles.c.id).where(*live, by_rows)
    f = facts.table.c
    by_facts = _Compiler(now, resolve_segment, policy, facts).predicate(rule, conjunct=True)
    # Nearly every row is fresh: read them in one scan, not through the indexes that
    # find the few stale ones, and test freshness last, on the rows the rule keeps.
    fresh = select(f.profile_id.label("id")).where(
        by_facts,
        _NotIndexed(f.fresh_from, UtcDateTime()) <= now,
        _NotIndexed(f.fresh_until, UtcDateTime()) > now,
    )
    stale_ids = select(f.profile_id).where(or_(f.fresh_from > now, f.fresh_until <= now))
    # Driven by the stale ids (few), not by the index on merged_into (every profile).
    live_unindexed = (
        _NotIndexed(profiles.c.merged_into, BigInteger()).is_(None),
        _NotIndexed(profiles.c.erased_at, UtcDateTime()).is_(None),
    )
    stale = select(profiles.c.id).where(*live_unindexed, profiles.c.id.in_(stale_ids), by_rows)
    matched = union_all(fresh, stale).subquery("matched")
    return select(matched.c.id)


def index_columns(rule: Rule, facts: Facts, policy: AgePolicy | None = None) -> tuple[str, ...]:
    """The `profile_facts` columns of an index through which `rule` reads only the rows
    holding the strings it requires, or () when it requires none.

    A trait required at the top level (`and` terms) to equal one of some strings is
    compared as JSON text there (`_JsonStringIn`), which an index on its column serves:
    those columns lead, then the of-age columns (`= 1`), then every other column the
    rule reads in the order the compiler tests them (the first one a range), then the
    freshness bounds, so the index alone answers the count (segments.facts keeps it).
    """
    policy = policy or default_policy()
    fingerprint = policy_fingerprint(policy)
    terms = list(_conjuncts(rule))
    lead = [
        name
        for term in terms
        if isinstance(term, TraitCondition) and _seekable_strings(term) is not None
        if (name := facts.name(TraitFact(term.trait))) is not None
    ]
    if not lead:
        return ()
    equal = [
        name
        for term in terms
        if isinstance(term, OfAgeFor)
        if (name := facts.name(OfAgeFact(term.category, term.level, fingerprint))) is not None
    ]
    ordered = sorted(terms, key=_Compiler(FOREVER, _no_segments, policy, facts).cost)
    rest = [
        name
        for term in ordered
        for fact in facts_of([term], fingerprint)
        if (name := facts.name(fact)) is not None
    ]
    if any(isinstance(node, AgeCondition) for _, node in walk(rule)):
        rest += ["dob", "level", "jurisdiction"]
    return (*dict.fromkeys([*lead, *equal, *rest]), "fresh_from", "fresh_until")


def _conjuncts(rule: Rule) -> Iterator[Rule]:
    """The terms a row must meet all of: `rule`, or its `and` terms, flattened."""
    if isinstance(rule, And):
        for part in rule.rules:
            yield from _conjuncts(part)
    else:
        yield rule


def fact_value(
    fact: Fact,
    *,
    now: datetime,
    profile_id: ColumnElement[Any] = profiles.c.id,
) -> ColumnElement[Any]:
    """What a `profile_facts` column holding `fact` holds for the profile `profile_id`
    names (a column of the statement's own table), at `now`: the SQL the compiler
    runs without facts, so a row and the profile's own rows agree."""
    compiler = _Compiler(now, _no_segments, default_policy())
    compiler.pid = profile_id
    compiler.outer = profile_id.table
    return compiler.fact_value(fact)


@lru_cache(maxsize=16)
def policy_fingerprint(policy: AgePolicy) -> str:
    """A short digest of the age table's rows and zones: facts worked out under one
    table are not read under another."""
    rows = sorted(repr(rule) for rule in policy.rules)
    zones = sorted(f"{code}={zone}" for code, zone in policy._zones.items())
    digest = hashlib.sha256("\n".join(rows + zones).encode()).hexdigest()
    return digest[:16]


def _no_segments(slug: str) -> Rule:
    raise RuleError("", f"a fact cannot use a segment ({slug})")


class _Compiler:
    """One rule at one instant, over each profile's own rows or, given `facts`, over
    its row of `profile_facts` (what that row lacks is read from the profile's rows)."""

    def __init__(
        self,
        now: datetime,
        resolve_segment: Callable[[str], Rule],
        policy: AgePolicy,
        facts: Facts | None = None,
    ) -> None:
        self.now = now
        self.today = now.astimezone(UTC).date()
        self.resolve_segment = resolve_segment
        self.policy = policy
        self.facts = facts
        self.outer: FromClause = profiles if facts is None else facts.table
        self.pid: ColumnElement[Any] = profiles.c.id if facts is None else facts.table.c.profile_id
        self.using: list[str] = []  # the in_segment chain being inlined

    def exists(self, table: Table, *where: ColumnElement[bool]) -> Exists:
        """EXISTS over one of the profile's rows (an index on (profile_id, …) finds them)."""
        return (
            select(literal_column("1"))
            .select_from(table)
            .where(*where)
            .correlate(self.outer)
            .exists()
        )

    def predicate(self, rule: Rule, conjunct: bool = False) -> ColumnElement[bool]:
        """`rule` as SQL. `conjunct`: the result is one term of a WHERE's AND, where
        NULL excludes a row as false does (only then may a comparison yield NULL)."""
        match rule:
            case And():
                parts = rule.rules
                if self.facts is not None:  # SQLite tests the terms in the order given
                    parts = tuple(sorted(parts, key=self.cost))
                return and_(*(self.predicate(r, conjunct) for r in parts))
            case Or():
                return or_(*(self.predicate(r) for r in rule.rules))
            case Not():
                return not_(self.predicate(rule.rule))
            case TraitCondition():
                return self.trait(rule, conjunct)
            case ConsentCondition():
                return self.consent(rule)
            case AgeCondition():
                return self.age(rule)
            case OfAgeFor():
                return self.of_age_for(rule)
            case EventCondition():
                return self.event(rule)
            case InSegment():
                return self.in_segment(rule, conjunct)
            case IdentifierCondition():
                held = self.exists(
                    identifiers,
                    identifiers.c.profile_id == self.pid,
                    identifiers.c.kind == rule.type,
                )
                return held if rule.op == "exists" else not_(held)
            case _:
                assert_never(rule)

    def cost(self, rule: Rule) -> int:
        """A rough price of testing `rule` on one facts row: typed columns first, then
        JSON, exact sums (a Python function on SQLite) and the profile's own rows last."""
        facts = self.facts
        assert facts is not None
        match rule:
            case And() | Or():
                return sum(self.cost(r) for r in rule.rules)
            case Not():
                return self.cost(rule.rule)
            case AgeCondition():
                return 2
            case OfAgeFor():
                fact = OfAgeFact(rule.category, rule.level, policy_fingerprint(self.policy))
                return 1 if facts.column(fact) is not None else 8  # a date per jurisdiction
            case ConsentCondition():
                held = facts.column(ConsentFact(rule.channel, rule.purpose))
                return 20 if held is None else 1
            case TraitCondition():
                if facts.column(TraitFact(rule.trait)) is None:
                    return 20
                return 5 if rule.op == "contains" else 3
            case EventCondition():
                needed = event_facts(rule)
                if all(facts.column(f) is not None for f in needed.values()):
                    return 6 if rule.agg in ("sum", "avg") else 1
                return 0 if self.from_events(rule) else 40
            case InSegment() | IdentifierCondition():
                return 20
            case _:
                assert_never(rule)

    def trait(self, rule: TraitCondition, conjunct: bool = False) -> ColumnElement[bool]:
        column = None if self.facts is None else self.facts.column(TraitFact(rule.trait))
        if column is not None:  # SQL NULL (no trait) is absent, as JSON null is
            if conjunct and (strings := _seekable_strings(rule)) is not None:
                return _JsonStringIn(column, strings)  # an index on the column serves it
            held = _JsonAt(column)
            if rule.op == "not_exists":
                return not_(_JsonIs(held, "present"))
            return _compare(rule.op, rule.value, held)
        value = _JsonAt(traits.c.value)
        row = (traits.c.profile_id == self.pid, traits.c.name == rule.trait)
        if rule.op == "not_exists":  # no row at all is absent too
            return not_(self.exists(traits, *row, _JsonIs(value, "present")))
        return self.exists(traits, *row, _compare(rule.op, rule.value, value))

    def consent(self, rule: ConsentCondition) -> ColumnElement[bool]:
        fact = ConsentFact(rule.channel, rule.purpose)
        until = None if self.facts is None else self.facts.column(fact)
        if until is not None:  # until when it is granted; NULL: it is not
            granted: ColumnElement[bool] = and_(until.is_not(None), until > self.now)
        else:
            granted = self.exists(
                consent_state,
                consent_state.c.profile_id == self.pid,
                consent_state.c.channel == rule.channel,
                consent_state.c.purpose == rule.purpose,
                _NotIndexed(consent_state.c.status) == "granted",
                or_(consent_state.c.expires_at.is_(None), consent_state.c.expires_at > self.now),
            )
        return granted if rule.is_ == "granted" else not_(granted)

    def age_row(self, *holds: ColumnElement[bool]) -> ColumnElement[bool]:
        """`holds` of the profile's age state: its facts row (never NULL) or its row."""
        if self.facts is None:
            return self.exists(age_state, age_state.c.profile_id == self.pid, *holds)
        return _definitely(and_(*holds))

    @property
    def age_columns(self) -> Any:
        return age_state.c if self.facts is None else self.facts.table.c

    def age(self, rule: AgeCondition) -> ColumnElement[bool]:
        """Completed years on today's UTC date, as date-of-birth ranges: `age >= n`
        is `dob <= the latest birth date that is n today`."""
        dob = self.age_columns.dob
        known = and_(dob.is_not(None), dob <= self.today)
        if rule.op == "not_exists":
            return not_(self.age_row(known))
        if rule.op == "exists":
            holds = known
        else:
            assert rule.value is not None
            at_least = self.born_by(rule.value)  # age >= value
            above = self.born_by(rule.value + 1)  # age > value
            match rule.op:
                case "gte":
                    holds = and_(dob.is_not(None), dob <= at_least)
                case "gt":
                    holds = and_(dob.is_not(None), dob <= above)
                case "lte":
                    holds = and_(known, dob > above)
                case "lt":
                    holds = and_(known, dob > at_least)
                case "eq":
                    holds = and_(dob.is_not(None), dob > above, dob <= at_least)
                case "ne":
                    holds = and_(known, or_(dob <= above, dob > at_least))
                case _:
                    assert_never(rule.op)
        return self.age_row(holds)

    def born_by(self, years: int) -> date:
        """The latest date of birth with `years` completed years today (UTC)."""

        def old_enough(dob: date) -> bool:
            age = completed_years(dob, self.today)
            return age is not None and age >= years

        return _latest(old_enough, _years_before(self.today, years))

    def of_age_for(self, rule: OfAgeFor) -> ColumnElement[bool]:
        fact = OfAgeFact(rule.category, rule.level, policy_fingerprint(self.policy))
        held = None if self.facts is None else self.facts.column(fact)
        if held is not None:  # worked out when the row was written (the SQL below)
            return held == 1
        required = (
            required_level_for(rule.category)
            if rule.level is None
            else VerificationLevel(rule.level)
        )
        levels = [level.value for level in VerificationLevel if level >= required]
        latest = latest_dobs_of_age(self.policy, rule.category, self.now)
        c = self.age_columns
        of_age = latest.condition(c.jurisdiction, c.dob)
        if of_age is None:
            return false()
        return self.age_row(c.level.in_(levels), c.dob.is_not(None), of_age)

    def from_events(self, rule: EventCondition) -> bool:
        """Whether `rule` is better found from the events it needs than per profile:
        a count over a window (an index on (name, timestamp) reads just those) that
        no profile without such an event meets."""
        if rule.agg != "count" or rule.within_days is None:
            return False
        match rule.op:
            case "gte" | "eq":
                return rule.value > 0
            case "gt":
                return rule.value >= 0
            case _:
                return False

    def fact_value(self, fact: Fact) -> ColumnElement[Any]:
        match fact:
            case TraitFact():
                return (
                    select(traits.c.value)
                    .where(traits.c.profile_id == self.pid, traits.c.name == fact.name)
                    .correlate(self.outer)
                    .scalar_subquery()
                )
            case ConsentFact():  # until when granted: the latest expiry, NULL if none
                until = func.coalesce(consent_state.c.expires_at, literal(FOREVER, UtcDateTime()))
                return (
                    select(func.max(until))
                    .where(
                        consent_state.c.profile_id == self.pid,
                        consent_state.c.channel == fact.channel,
                        consent_state.c.purpose == fact.purpose,
                        _NotIndexed(consent_state.c.status) == "granted",
                    )
                    .correlate(self.outer)
                    .scalar_subquery()
                )
            case OfAgeFact():
                plain = _Compiler(self.now, self.resolve_segment, self.policy)
                plain.pid, plain.outer = self.pid, self.outer
                held = plain.of_age_for(OfAgeFor(fact.category, fact.level))
                return case((held, 1), else_=0)
            case EventFact():
                return self.aggregate(fact)
            case _:
                assert_never(fact)

    def event_where(self, rule: EventCondition) -> list[ColumnElement[bool]]:
        """Which of the profile's events `rule` aggregates."""
        where: list[ColumnElement[bool]] = [
            events.c.profile_id == self.pid,
            events.c.type == "track",
            _NotIndexed(events.c.name) == rule.event,
        ]
        if rule.within_days is not None:
            where.append(events.c.timestamp >= self.now - timedelta(days=rule.within_days))
        for flt in rule.where:
            at = _JsonAt(events.c.properties, _steps(flt.property))
            where.append(_compare(flt.op, flt.value, at, conjunct=True))
        return where

    def aggregate(self, fact: EventFact) -> ColumnElement[Any]:
        """The value of `fact` for this profile, from its events (what a facts column
        holds): a count (0 over none), an exact sum (0 over none), how many values are
        numbers, or their minimum or maximum (NULL over none)."""
        condition = EventCondition(
            fact.event,
            "gte",
            0,
            within_days=fact.within_days,
            property=fact.path,
            where=fact.where,
        )
        if fact.fn == "count":
            column: ColumnElement[Any] = func.count()
        else:
            assert fact.path is not None
            number = _JsonNumber(_JsonAt(events.c.properties, _steps(fact.path)))
            match fact.fn:
                case "sum":
                    column = _ExactSum(number)
                case "n":
                    column = func.count(number)
                case "min":
                    column = func.min(number)
                case "max":
                    column = func.max(number)
                case _:
                    raise ValueError(f"not an aggregate: {fact.fn}")
        return self.per_profile(self.event_where(condition), column)

    def per_profile(
        self, where: Sequence[ColumnElement[bool]], column: ColumnElement[Any]
    ) -> ColumnElement[Any]:
        """A correlated subquery: one aggregate over this profile's events."""
        return (
            select(column).select_from(events).where(*where).correlate(self.outer)
        ).scalar_subquery()

    def event(self, rule: EventCondition) -> ColumnElement[bool]:
        if self.facts is not None:
            found = self.event_from_facts(rule)
            if found is not None:
                return found
        where = self.event_where(rule)
        if rule.agg == "count":
            return _NumberIs(self.per_profile(where, func.count()), rule.op, rule.value)
        assert rule.property is not None
        number = _JsonNumber(_JsonAt(events.c.properties, _steps(rule.property)))
        match rule.agg:
            case "sum":  # 0 over no events
                return _SumIs(self.per_profile(where, _ExactSum(number)), rule.op, rule.value)
            case "avg":  # avg op v  ⇔  sum op v·n, with n > 0 (as the evaluator)
                n = func.count(number)
                holds = and_(n > 0, _SumIs(_ExactSum(number), rule.op, rule.value, times=n))
            case "min":
                holds = _NumberIs(func.min(number), rule.op, rule.value)
            case "max":
                holds = _NumberIs(func.max(number), rule.op, rule.value)
            case _:
                assert_never(rule.agg)
        # min/max/avg of nothing is NULL: CASE makes "no value" a plain false.
        return self.per_profile(where, case((holds, 1), else_=0)) == 1

    def event_from_facts(self, rule: EventCondition) -> ColumnElement[bool] | None:
        """`rule` on the facts row's aggregates, or as a semi-join from the events it
        needs; None when neither applies."""
        assert self.facts is not None
        needed = event_facts(rule)
        found = {fn: self.facts.column(fact) for fn, fact in needed.items()}
        columns = {fn: c for fn, c in found.items() if c is not None}
        if len(columns) == len(found):
            match rule.agg:
                case "count":
                    return _NumberIs(columns["count"], rule.op, rule.value)
                case "sum":
                    return _SumIs(columns["sum"], rule.op, rule.value)
                case "avg":
                    total, n = columns["sum"], columns["n"]
                    return and_(n > 0, _SumIs(total, rule.op, rule.value, times=n))
                case "min" | "max":
                    holds = _NumberIs(columns[rule.agg], rule.op, rule.value)
                    return case((holds, True), else_=False)
                case _:
                    assert_never(rule.agg)
        if not self.from_events(rule):
            return None
        assert rule.within_days is not None
        where: list[ColumnElement[bool]] = [
            events.c.type == "track",
            events.c.name == rule.event,  # here the (name, timestamp) index is the way in
            events.c.timestamp >= self.now - timedelta(days=rule.within_days),
        ]
        for flt in rule.where:
            at = _JsonAt(events.c.properties, _steps(flt.property))
            where.append(_compare(flt.op, flt.value, at, conjunct=True))
        holders = select(events.c.profile_id).where(*where)
        one_is_enough = (rule.op == "gte" and rule.value <= 1) or (
            rule.op == "gt" and rule.value < 1
        )
        if not one_is_enough:
            holders = holders.group_by(events.c.profile_id).having(
                _NumberIs(func.count(), rule.op, rule.value)
            )
        return self.pid.in_(holders)

    def in_segment(self, rule: InSegment, conjunct: bool = False) -> ColumnElement[bool]:
        if rule.slug in self.using:
            chain = " → ".join([*self.using, rule.slug])
            raise RuleError("", f"segments would form a cycle: {chain}")
        self.using.append(rule.slug)
        try:
            return self.predicate(self.resolve_segment(rule.slug), conjunct)
        finally:
            self.using.pop()


def _definitely(holds: ColumnElement[bool]) -> ColumnElement[bool]:
    """`holds`, with SQL NULL (an unknown column compared) as false, so NOT stays two-valued."""
    return func.coalesce(holds, false(), type_=Boolean)


# -- comparisons (docs/segments.md, Semantics 1-6) ------------------------------------


def _compare(
    op: Op, value: Value, at: _JsonAt, *, conjunct: bool = False
) -> ColumnElement[bool]:
    """`evaluate.compare` in SQL: the JSON value at `at` compared with a rule's value;
    true or false for every row, absent values included.

    `conjunct`: the result is one term of a WHERE's AND (an event filter), where NULL
    excludes the row just as false does; an equality may then be left as a plain
    comparison of the value's text, which the events' indexed `category` column serves.
    """
    present = _JsonIs(at, "present")
    match op:
        case "exists":
            return present
        case "not_exists":
            return not_(present)
        case "eq":
            return _equal(value, at, conjunct)
        case "ne":
            return and_(present, not_(_equal(value, at, conjunct)))
        case "in":
            return _member(value, at, conjunct)
        case "not_in":
            return and_(present, not_(_member(value, at, conjunct)))
        case "contains":
            assert isinstance(value, str)
            return or_(
                and_(_JsonIs(at, "string"), _TextContains(_JsonText(at), value)),
                and_(_JsonIs(at, "array"), _JsonArrayHas(at, value)),
            )
        case "starts_with":
            assert isinstance(value, str)
            return and_(_JsonIs(at, "string"), _TextStartsWith(_JsonText(at), value))
        case "lt" | "lte" | "gt" | "gte":
            if isinstance(value, str):  # a date YYYY-MM-DD: compare the stored date part
                text = _JsonText(at)
                return and_(
                    _JsonIs(at, "string"),
                    _TextIsDate(text),
                    _ordered(op, _DatePrefix(text), literal(value, String())),
                )
            assert isinstance(value, int | float) and not isinstance(value, bool)
            return and_(_JsonIs(at, "number"), _NumberIs(_JsonNumber(at), op, value))
        case _:
            assert_never(op)


def _equal(value: Value, at: _JsonAt, conjunct: bool = False) -> ColumnElement[bool]:
    if isinstance(value, bool):
        return _JsonIs(at, "true" if value else "false")
    if isinstance(value, str):
        if conjunct and _only_a_string_reads(value):
            return _text_of(at) == literal(value, String())  # NULL (absent) excludes
        return and_(_JsonIs(at, "string"), _JsonText(at) == literal(value, String()))
    assert isinstance(value, int | float)
    return and_(_JsonIs(at, "number"), _NumberIs(_JsonNumber(at), "eq", value))


def _member(value: Value, at: _JsonAt, conjunct: bool = False) -> ColumnElement[bool]:
    assert isinstance(value, tuple) and value
    if isinstance(value[0], str):
        texts = [v for v in value if isinstance(v, str)]
        strings = [literal(v, String()) for v in texts]
        if conjunct and all(_only_a_string_reads(v) for v in texts):
            return _text_of(at).in_(strings)
        return and_(_JsonIs(at, "string"), _JsonText(at).in_(strings))
    numbers = [v for v in value if not isinstance(v, str)]
    if any(_NumberIs.by_kind(v) for v in numbers):
        either = or_(*(_NumberIs(_JsonNumber(at), "eq", v) for v in numbers))
        return and_(_JsonIs(at, "number"), either)
    exact = [_ExactNumber(v) for v in numbers]
    return and_(_JsonIs(at, "number"), _JsonNumber(at).in_(exact))


def _text_of(at: _JsonAt) -> ColumnElement[Any]:
    """The value's text: the events' generated, indexed `category` column for their
    `category` (migration 0009: the same expression), else read from the JSON."""
    if at.document is events.c.properties and at.steps == ("category",):
        return events.c.category
    return _JsonText(at)


def _seekable_strings(rule: TraitCondition) -> tuple[str, ...] | None:
    """The strings an `eq`/`in` condition requires the trait to be, when each is plain
    printable ASCII (no quote, no backslash): every JSON writer — orjson, which stores
    trait values, SQLite's and PostgreSQL's own — writes such a string as itself in
    quotes, so it can be found by its JSON text. None otherwise."""
    if rule.op == "eq":
        values: tuple[Any, ...] = (rule.value,)
    elif rule.op == "in" and isinstance(rule.value, tuple):
        values = rule.value
    else:
        return None
    if not all(isinstance(v, str) and _PLAIN.fullmatch(v) for v in values):
        return None
    return values


_PLAIN: Final = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII but " and \


def _only_a_string_reads(text: str) -> bool:
    """Whether only the JSON string `text` has `text` as its SQL text value (SQLite's
    `json_extract`, PostgreSQL's `#>>`): not when it could be an array or object, a
    boolean, null or a number (PostgreSQL gives `5`, `true` for those; SQLite gives
    them as numbers, which never equal text), so the type test may be left out."""
    if not text or text[0] in "[{" or text in ("true", "false", "null"):
        return False
    try:
        float(text)
    except ValueError:
        return True
    return False


def _ordered(op: str, left: ColumnElement[Any], right: ColumnElement[Any]) -> ColumnElement[bool]:
    match op:
        case "eq":
            return left == right
        case "ne":
            return left != right
        case "lt":
            return left < right
        case "lte":
            return left <= right
        case "gt":
            return left > right
        case "gte":
            return left >= right
    raise ValueError(f"not an ordering operator: {op}")


_STEP: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _steps(path: str) -> tuple[str, ...]:
    steps = tuple(path.split("."))
    if not all(_STEP.fullmatch(step) for step in steps):  # parse_rule refuses these
        raise ValueError(f"property {path!r} is not a plain dotted path")
    return steps


# -- legal age (of_age_for) -----------------------------------------------------------


@dataclass(frozen=True)
class LatestDobs:
    """For one category at one instant: per jurisdiction of the age table, the latest
    date of birth that is of age there today (local date), and which countries' rows
    cover their subdivisions that the table does not name."""

    by_jurisdiction: Mapping[str, date]
    by_country_fallback: Mapping[str, date]
    named: frozenset[str]  # every jurisdiction the table names (rows or zones)

    def condition(
        self, jurisdiction: ColumnElement[Any], dob: ColumnElement[Any]
    ) -> ColumnElement[bool] | None:
        """`jurisdiction`/`dob` of age, or None when nowhere is."""
        if not self.by_jurisdiction:
            return None
        parts: list[ColumnElement[bool]] = []
        for latest, codes in _grouped(self.by_jurisdiction).items():
            parts.append(and_(jurisdiction.in_(codes), dob <= latest))
        for latest, countries in _grouped(self.by_country_fallback).items():
            others = sorted(
                code for code in self.named if "-" in code and code.split("-")[0] in countries
            )
            subdivision = _SubdivisionOf(jurisdiction, tuple(countries))
            if others:
                parts.append(and_(subdivision, jurisdiction.not_in(others), dob <= latest))
            else:
                parts.append(and_(subdivision, dob <= latest))
        return or_(*parts)


@lru_cache(maxsize=256)  # segments are compiled many at a time, at one `now`
def latest_dobs_of_age(policy: AgePolicy, category: str, now: datetime) -> LatestDobs:
    """Where `category` may be marketed at `now`, the latest date of birth that is of
    age: `guestlist.age.eligibility`'s age test, solved for the date of birth.

    Each jurisdiction the table names (in a row or in [zones]) gets the row its lookup
    finds (the subdivision, then its country; the category, then its parents), judged
    on the local date of its own zone, with the row's calendar-year and 29 February
    rules. A subdivision the table does not name is judged as its country (its row and
    its zone). Prohibited and unknown are left out: never of age.
    """
    named = frozenset(rule.jurisdiction for rule in policy.rules) | _zoned(policy)
    by_jurisdiction: dict[str, date] = {}
    for code in sorted(named):
        found = policy.lookup(code, category)
        if found.status is not RuleStatus.MINIMUM_AGE:
            continue
        rule = found.rule
        assert rule is not None and rule.minimum_age is not None
        by_jurisdiction[code] = _latest_dob(rule, now.astimezone(policy.zone(code)).date())
    fallback = {code: d for code, d in by_jurisdiction.items() if "-" not in code}
    return LatestDobs(MappingProxyType(by_jurisdiction), MappingProxyType(fallback), named)


def _latest_dob(rule: AgeRule, today: date) -> date:
    """The latest date of birth that is of age under `rule` on the local date `today`."""
    minimum = rule.minimum_age
    assert minimum is not None

    def of_age(dob: date) -> bool:
        coming_of_age = of_age_on(
            dob, minimum, rule_type=rule.rule_type, feb29_birthday_on=rule.feb29_birthday_on
        )
        return coming_of_age <= today

    if rule.rule_type is RuleType.CALENDAR_YEAR:
        return _latest(of_age, date(today.year - minimum, 12, 31))
    return _latest(of_age, _years_before(today, minimum))


def _zoned(policy: AgePolicy) -> frozenset[str]:
    """The jurisdictions the table gives a time zone. AgePolicy has no public view of
    its [zones] yet; a subdivision with its own zone but no rows (US-TX) is judged on
    its own local date, so the compiler must know it."""
    zones: dict[str, Any] = policy._zones
    return frozenset(code for code in zones if is_jurisdiction(code))


def _grouped(latest: Mapping[str, date]) -> dict[date, list[str]]:
    out: dict[date, list[str]] = defaultdict(list)
    for code in sorted(latest):
        out[latest[code]].append(code)
    return dict(out)


def _latest(holds: Callable[[date], bool], guess: date) -> date:
    """The latest date for which `holds` is true, given that it holds for every date
    up to some day and for none after it, searching from `guess` (a few days off)."""
    while not holds(guess):
        guess -= _ONE_DAY
    while holds(guess + _ONE_DAY):
        guess += _ONE_DAY
    return guess


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


# -- SQL constructs with one rendering per database ---------------------------------


@dataclass(frozen=True)
class _JsonAt:
    """A JSON value in the database: a JSON column and the object keys to step
    through inside it (none: the column's own value)."""

    document: ColumnElement[Any]
    steps: tuple[str, ...] = ()


class _Sql(FunctionElement[Any]):
    """A construct rendered differently on SQLite and PostgreSQL. Statements holding
    one are not cached: each rendering chooses its own bind parameters."""

    inherit_cache = False
    type: TypeEngine[Any] = NullType()  # a predicate: no "= 1" added on SQLite

    def parts(self) -> list[ColumnElement[Any]]:
        return list(self.clauses)


@compiles(_Sql)
def _unsupported(element: _Sql, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(
        f"segment rules compile for SQLite and PostgreSQL, not {compiler.dialect.name}"
    )


class _JsonIs(_Sql):
    """The JSON value at a path is `kind`: present (not missing, not null), string,
    number, array, true or false. Never NULL."""

    inherit_cache = False
    name = "json_is"

    def __init__(self, at: _JsonAt, kind: str) -> None:
        self.steps = at.steps
        self.kind = kind
        super().__init__(at.document)


class _JsonText(_Sql):
    """The text of the JSON string at a path (meaningless for other kinds)."""

    inherit_cache = False
    name = "json_text"
    type = String()

    def __init__(self, at: _JsonAt) -> None:
        self.steps = at.steps
        super().__init__(at.document)


class _JsonNumber(_Sql):
    """The JSON number at a path, exact on PostgreSQL (numeric); NULL for other kinds."""

    inherit_cache = False
    name = "json_number"
    type = Numeric()

    def __init__(self, at: _JsonAt) -> None:
        self.steps = at.steps
        super().__init__(at.document)


class _JsonArrayHas(_Sql):
    """The JSON value at a path is an array with an element equal to the string."""

    inherit_cache = False
    name = "json_array_has"

    def __init__(self, at: _JsonAt, string: str) -> None:
        self.steps = at.steps
        super().__init__(at.document, literal(string, String()))


class _JsonStringIn(_Sql):
    """The JSON column holds one of the plain `strings` (`_seekable_strings`), compared
    as stored JSON text (SQLite) or as jsonb (PostgreSQL), so a plain index on the
    column serves it. NULL for a row without the value: only for a term of an AND."""

    inherit_cache = False
    name = "json_string_in"

    def __init__(self, document: ColumnElement[Any], strings: Sequence[str]) -> None:
        super().__init__(document, *(literal(f'"{s}"', String()) for s in strings))


class _TextContains(_Sql):
    inherit_cache = False
    name = "text_contains"

    def __init__(self, text: ColumnElement[Any], needle: str) -> None:
        super().__init__(text, literal(needle, String()))


class _TextStartsWith(_Sql):
    inherit_cache = False
    name = "text_starts_with"

    def __init__(self, text: ColumnElement[Any], prefix: str) -> None:
        super().__init__(text, literal(prefix, String()), literal(prefix, String()))


class _TextIsDate(_Sql):
    """The text is `NNNN-NN-NN` (ASCII digits), alone or followed by `T` or a space."""

    inherit_cache = False
    name = "text_is_date"

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)


class _DatePrefix(_Sql):
    """The first ten characters, compared byte by byte."""

    inherit_cache = False
    name = "date_prefix"
    type = String()

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)


class _ExactNumber(_Sql):
    """A rule's number: as itself on SQLite, as the exact decimal it is written as
    (`exact_number`) on PostgreSQL."""

    inherit_cache = False
    name = "exact_number"
    type = Numeric()

    def __init__(self, value: Number) -> None:
        exact: Decimal = exact_number(value)
        super().__init__(literal(value), literal(exact, Numeric()))


_SYMBOLS: Final = {"eq": "=", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


class _NumberIs(_Sql):
    """A number (SQL NULL: no value) compared by `op` with a rule's number, exactly
    as the evaluator compares: with the decimal the rule's number is written as.

    PostgreSQL compares numerics with that decimal. SQLite holds doubles and 64-bit
    integers. A double compared with a double orders as their shortest decimals do,
    and a whole number up to 2^53 is the same double and decimal, so binding the
    rule's own number is exact, except for a whole float beyond 2^53 met by a stored
    integer: 2.273050474884671e16 is the double 22730504748846712 but the decimal
    22730504748846710, which a stored 22730504748846712 must not equal. Then integers
    are compared with that decimal as an integer, doubles with the double."""

    inherit_cache = False
    name = "number_is"

    def __init__(self, number: ColumnElement[Any], op: str, value: Number) -> None:
        self.symbol = _SYMBOLS[op]
        self.split = self.by_kind(value)
        exact = exact_number(value)
        parts: list[ColumnElement[Any]] = [number, literal(value), literal(exact, Numeric())]
        if self.split:
            parts.append(literal(int(exact)))
        super().__init__(*parts)

    @staticmethod
    def by_kind(value: Number) -> bool:
        """Whether SQLite must compare integers and doubles with `value` apart."""
        return isinstance(value, float) and value.is_integer() and SAFE_INTEGER < abs(value) < 2**63


class _ExactSum(_Sql):
    """The sum of numbers, 0 over none: exact (numeric) on PostgreSQL, binary floating
    point on SQLite (`total`, which never overflows)."""

    inherit_cache = False
    name = "exact_sum"
    type = Numeric()

    def __init__(self, number: ColumnElement[Any]) -> None:
        super().__init__(number)


class _SumIs(_Sql):
    """An `_ExactSum` compared by `op` with a rule's number (times `times`, for avg),
    exactly: numerics on PostgreSQL; on SQLite the sum is the decimal text of
    `gl_exact_sum` and `gl_decimal_cmp` compares it (store.engine registers both)."""

    inherit_cache = False
    name = "sum_is"

    def __init__(
        self,
        total: ColumnElement[Any],
        op: str,
        value: Number,
        *,
        times: ColumnElement[Any] | None = None,
    ) -> None:
        self.symbol = _SYMBOLS[op]
        exact = exact_number(value)
        self.approx = float(exact)  # the nearest double: SQLite's quick test (_sum_is_sqlite)
        parts = [total, literal(str(exact), String()), literal(exact, Numeric())]
        if times is not None:
            parts.append(times)
        super().__init__(*parts)


class _NotIndexed(_Sql):
    """A column SQLite must not look up through an index here. In a subquery run per
    profile, an index on (profile_id, …) reads only that profile's rows, but with no
    statistics (guestlist never runs ANALYZE on SQLite) the planner may prefer one on
    (name, …) or (channel, purpose, status), which reads every profile's rows each
    time. SQLite's unary + takes a term out of index selection."""

    inherit_cache = False
    name = "not_indexed"
    type: Any = String()

    def __init__(self, column: ColumnElement[Any], type_: TypeEngine[Any] | None = None) -> None:
        super().__init__(column)
        if type_ is not None:  # what values compared with it are bound as
            self.type = type_


class _SubdivisionOf(_Sql):
    """The text is a canonical subdivision code (`US-TX`) of one of `countries`."""

    inherit_cache = False
    name = "subdivision_of"

    def __init__(self, text: ColumnElement[Any], countries: Iterable[str]) -> None:
        self.countries = tuple(countries)
        if not all(re.fullmatch(r"[A-Z]{2}", c) for c in self.countries):
            raise ValueError(f"not country codes: {self.countries}")
        super().__init__(text)


_SQLITE_KIND: Final = {
    "present": "!= 'null'",
    "string": "= 'text'",
    "number": "IN ('integer', 'real')",
    "array": "= 'array'",
    "true": "= 'true'",
    "false": "= 'false'",
}
_PG_KIND: Final = {
    "present": "!= 'null'",
    "string": "= 'string'",
    "number": "= 'number'",
    "array": "= 'array'",
}
_SQLITE_DATE: Final = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"
_PG_DIGIT: Final = "[0123456789]"  # not [0-9] nor \d: ASCII digits whatever the locale
_PG_DATE: Final = f"^{_PG_DIGIT}{{4}}-{_PG_DIGIT}{{2}}-{_PG_DIGIT}{{2}}([T ]|$)"


def _sqlite_path(steps: tuple[str, ...]) -> str:
    return "'$" + "".join(f".{step}" for step in steps) + "'"


def _pg_path(steps: tuple[str, ...]) -> str:
    return "'{" + ",".join(steps) + "}'"


def _render(compiler: SQLCompiler, element: ColumnElement[Any], **kw: Any) -> str:
    return str(compiler.process(element, **kw))


def _pg_value(element: _Sql, compiler: SQLCompiler, steps: tuple[str, ...], **kw: Any) -> str:
    document = _render(compiler, element.parts()[0], **kw)
    return f"({document} #> {_pg_path(steps)})" if steps else document


@compiles(_JsonIs, "sqlite")
def _json_is_sqlite(element: _JsonIs, compiler: SQLCompiler, **kw: Any) -> str:
    document = _render(compiler, element.parts()[0], **kw)
    path = f", {_sqlite_path(element.steps)}" if element.steps else ""
    return f"(coalesce(json_type({document}{path}), 'null') {_SQLITE_KIND[element.kind]})"


@compiles(_JsonIs, "postgresql")
def _json_is_pg(element: _JsonIs, compiler: SQLCompiler, **kw: Any) -> str:
    value = _pg_value(element, compiler, element.steps, **kw)
    kind = f"coalesce(jsonb_typeof({value}), 'null')"
    if element.kind in ("true", "false"):
        return f"({kind} = 'boolean' AND {value} = '{element.kind}'::jsonb)"
    return f"({kind} {_PG_KIND[element.kind]})"


@compiles(_JsonText, "sqlite")
def _json_text_sqlite(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    document = _render(compiler, element.parts()[0], **kw)
    return f"json_extract({document}, {_sqlite_path(element.steps)})"


@compiles(_JsonText, "postgresql")
def _json_text_pg(element: _JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    document = _render(compiler, element.parts()[0], **kw)
    return f"({document} #>> {_pg_path(element.steps)})"


@compiles(_JsonStringIn, "sqlite")
def _json_string_in_sqlite(element: _JsonStringIn, compiler: SQLCompiler, **kw: Any) -> str:
    document, *texts = (_render(compiler, part, **kw) for part in element.parts())
    return f"{document} IN ({', '.join(texts)})"


@compiles(_JsonStringIn, "postgresql")
def _json_string_in_pg(element: _JsonStringIn, compiler: SQLCompiler, **kw: Any) -> str:
    document, *texts = (_render(compiler, part, **kw) for part in element.parts())
    return f"{document} IN ({', '.join(f'CAST({t} AS JSONB)' for t in texts)})"


@compiles(_JsonNumber, "sqlite")
def _json_number_sqlite(element: _JsonNumber, compiler: SQLCompiler, **kw: Any) -> str:
    document = _render(compiler, element.parts()[0], **kw)
    if element.steps:
        path = _sqlite_path(element.steps)
        return (
            f"CASE WHEN json_type({document}, {path}) IN ('integer', 'real') "
            f"THEN json_extract({document}, {path}) END"
        )
    # A JSON column has NUMERIC affinity: a bare number is stored as a SQLite number,
    # and reading it through json_extract would print it with 15 digits. Use it as is.
    return (
        f"CASE WHEN typeof({document}) IN ('integer', 'real') THEN {document} "
        f"WHEN json_type({document}) IN ('integer', 'real') "
        f"THEN json_extract({document}, '$') END"
    )


@compiles(_JsonNumber, "postgresql")
def _json_number_pg(element: _JsonNumber, compiler: SQLCompiler, **kw: Any) -> str:
    value = _pg_value(element, compiler, element.steps, **kw)
    return f"CASE WHEN jsonb_typeof({value}) = 'number' THEN ({value} #>> '{{}}')::numeric END"


@compiles(_JsonArrayHas, "sqlite")
def _json_array_has_sqlite(element: _JsonArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    document, string = (_render(compiler, part, **kw) for part in element.parts())
    path = f", {_sqlite_path(element.steps)}" if element.steps else ""
    return (
        f"EXISTS (SELECT 1 FROM json_each({document}{path}) AS json_item "
        f"WHERE json_item.type = 'text' AND json_item.value = {string})"
    )


@compiles(_JsonArrayHas, "postgresql")
def _json_array_has_pg(element: _JsonArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    value = _pg_value(element, compiler, element.steps, **kw)
    string = _render(compiler, element.parts()[1], **kw)
    return f"({value} @> jsonb_build_array(CAST({string} AS TEXT)))"


@compiles(_TextContains, "sqlite")
def _text_contains_sqlite(element: _TextContains, compiler: SQLCompiler, **kw: Any) -> str:
    text, needle = (_render(compiler, part, **kw) for part in element.parts())
    return f"(instr({text}, {needle}) > 0)"


@compiles(_TextContains, "postgresql")
def _text_contains_pg(element: _TextContains, compiler: SQLCompiler, **kw: Any) -> str:
    text, needle = (_render(compiler, part, **kw) for part in element.parts())
    return f"(strpos({text}, CAST({needle} AS TEXT)) > 0)"


@compiles(_TextStartsWith, "sqlite")
def _text_starts_with_sqlite(element: _TextStartsWith, compiler: SQLCompiler, **kw: Any) -> str:
    # Not LIKE, which ignores ASCII case on SQLite.
    text, prefix, again = (_render(compiler, part, **kw) for part in element.parts())
    return f"(substr({text}, 1, length({prefix})) = {again})"


@compiles(_TextStartsWith, "postgresql")
def _text_starts_with_pg(element: _TextStartsWith, compiler: SQLCompiler, **kw: Any) -> str:
    text, prefix = (_render(compiler, part, **kw) for part in element.parts()[:2])
    return f"starts_with({text}, CAST({prefix} AS TEXT))"


@compiles(_TextIsDate, "sqlite")
def _text_is_date_sqlite(element: _TextIsDate, compiler: SQLCompiler, **kw: Any) -> str:
    text = _render(compiler, element.parts()[0], **kw)
    return f"({text} GLOB '{_SQLITE_DATE}' OR {text} GLOB '{_SQLITE_DATE}[T ]*')"


@compiles(_TextIsDate, "postgresql")
def _text_is_date_pg(element: _TextIsDate, compiler: SQLCompiler, **kw: Any) -> str:
    text = _render(compiler, element.parts()[0], **kw)
    return f"({text} ~ '{_PG_DATE}')"


@compiles(_DatePrefix, "sqlite")
def _date_prefix_sqlite(element: _DatePrefix, compiler: SQLCompiler, **kw: Any) -> str:
    return f"substr({_render(compiler, element.parts()[0], **kw)}, 1, 10)"


@compiles(_DatePrefix, "postgresql")
def _date_prefix_pg(element: _DatePrefix, compiler: SQLCompiler, **kw: Any) -> str:
    return f'(left({_render(compiler, element.parts()[0], **kw)}, 10) COLLATE "C")'


@compiles(_ExactNumber, "sqlite")
def _exact_number_sqlite(element: _ExactNumber, compiler: SQLCompiler, **kw: Any) -> str:
    return _render(compiler, element.parts()[0], **kw)


@compiles(_ExactNumber, "postgresql")
def _exact_number_pg(element: _ExactNumber, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_render(compiler, element.parts()[1], **kw)} AS NUMERIC)"


@compiles(_NumberIs, "sqlite")
def _number_is_sqlite(element: _NumberIs, compiler: SQLCompiler, **kw: Any) -> str:
    parts = element.parts()
    number, value = (_render(compiler, part, **kw) for part in parts[:2])
    if not element.split:
        return f"({number} {element.symbol} {value})"
    whole = _render(compiler, parts[3], **kw)
    return (
        f"(CASE WHEN typeof({number}) = 'integer' THEN {number} {element.symbol} {whole} "
        f"ELSE {number} {element.symbol} {value} END)"
    )


@compiles(_NumberIs, "postgresql")
def _number_is_pg(element: _NumberIs, compiler: SQLCompiler, **kw: Any) -> str:
    parts = element.parts()
    number, exact = _render(compiler, parts[0], **kw), _render(compiler, parts[2], **kw)
    return f"({number} {element.symbol} CAST({exact} AS NUMERIC))"


@compiles(_ExactSum, "sqlite")
def _exact_sum_sqlite(element: _ExactSum, compiler: SQLCompiler, **kw: Any) -> str:
    # An aggregate over no rows gives NULL from Python (finalize is never called).
    return f"coalesce(gl_exact_sum({_render(compiler, element.parts()[0], **kw)}), '0')"


@compiles(_SumIs, "sqlite")
def _sum_is_sqlite(element: _SumIs, compiler: SQLCompiler, **kw: Any) -> str:
    parts = element.parts()
    total, text = _render(compiler, parts[0], **kw), _render(compiler, parts[1], **kw)
    times = _render(compiler, parts[3], **kw) if len(parts) > 3 else "1"
    exact = f"gl_decimal_cmp({total}, {text}, {times})"
    # A sum from a subquery is computed once here, not four times; a rule's number
    # beyond a double's range has no double to compare with.
    if not isinstance(parts[0], ColumnClause) or not math.isfinite(element.approx):
        return f"({exact} {element.symbol} 0)"
    # The exact comparison is a Python function, ~4 µs a row. Doubles decide first where
    # they cannot be wrong: text to double and the product are off by ~1e-16 of the
    # values, far inside the margin; a difference within it (equal sums, values beyond
    # a double's range, NULL) goes to the exact comparison.
    a, b = f"CAST({total} AS REAL)", f"({element.approx!r} * {times})"
    margin = f"(1e-9 * (abs({a}) + abs({b})) + 1e-290)"
    return (
        f"(CASE WHEN {a} - {b} > {margin} THEN 1 WHEN {b} - {a} > {margin} THEN -1 "
        f"ELSE {exact} END {element.symbol} 0)"
    )


@compiles(_SumIs, "postgresql")
def _sum_is_pg(element: _SumIs, compiler: SQLCompiler, **kw: Any) -> str:
    parts = element.parts()
    total, exact = _render(compiler, parts[0], **kw), _render(compiler, parts[2], **kw)
    target = f"CAST({exact} AS NUMERIC)"
    if len(parts) > 3:
        target = f"{target} * {_render(compiler, parts[3], **kw)}"
    return f"({total} {element.symbol} {target})"


@compiles(_ExactSum, "postgresql")
def _exact_sum_pg(element: _ExactSum, compiler: SQLCompiler, **kw: Any) -> str:
    return f"coalesce(sum({_render(compiler, element.parts()[0], **kw)}), 0)"


@compiles(_NotIndexed, "sqlite")
def _not_indexed_sqlite(element: _NotIndexed, compiler: SQLCompiler, **kw: Any) -> str:
    return f"+{_render(compiler, element.parts()[0], **kw)}"


@compiles(_NotIndexed, "postgresql")
def _not_indexed_pg(element: _NotIndexed, compiler: SQLCompiler, **kw: Any) -> str:
    return _render(compiler, element.parts()[0], **kw)


@compiles(_SubdivisionOf, "sqlite")
def _subdivision_of_sqlite(element: _SubdivisionOf, compiler: SQLCompiler, **kw: Any) -> str:
    text = _render(compiler, element.parts()[0], **kw)
    prefixes = ", ".join(f"'{country}-'" for country in element.countries)
    return (
        f"(substr({text}, 1, 3) IN ({prefixes}) AND length({text}) BETWEEN 4 AND 6 "
        f"AND substr({text}, 4) NOT GLOB '*[^A-Z0-9]*')"
    )


@compiles(_SubdivisionOf, "postgresql")
def _subdivision_of_pg(element: _SubdivisionOf, compiler: SQLCompiler, **kw: Any) -> str:
    text = _render(compiler, element.parts()[0], **kw)
    countries = "|".join(element.countries)
    return f"({text} ~ '^({countries})-[ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789]{{1,3}}$')"
