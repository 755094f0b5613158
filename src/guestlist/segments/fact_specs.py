"""What a column of `profile_facts` holds, named by a key that is stable text.

A fact is something a segment condition reads, kept per profile so that a rule over
every profile is one scan of one row each (segments.facts): a trait's value, until
when a channel's consent is granted, or one aggregate over a profile's events (a count,
an exact sum, how many numbers, a minimum or a maximum). The condition's operator and
value are not part of the fact: `count("Order Completed" within 90d) >= 2` and `… = 0`
read the same column.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

from guestlist.segments.rules import (
    ConsentCondition,
    EventCondition,
    EventFilter,
    Level,
    OfAgeFor,
    Op,
    Rule,
    TraitCondition,
    Value,
    walk,
)

AggregateFn = Literal["count", "sum", "n", "min", "max"]  # n: how many are numbers
AGGREGATE_FNS: tuple[str, ...] = get_args(AggregateFn)


@dataclass(frozen=True)
class TraitFact:
    name: str

    @property
    def key(self) -> str:
        return f"trait:{self.name}"


@dataclass(frozen=True)
class ConsentFact:
    """Until when consent on `channel` for `purpose` is granted (None: not granted)."""

    channel: str
    purpose: str

    @property
    def key(self) -> str:
        return f"consent:{self.channel}:{self.purpose}"


@dataclass(frozen=True)
class OfAgeFact:
    """Whether the profile is of age for `category` at `level` (None: the category's
    own) under the age table `policy` (its fingerprint): 1 or 0. It changes only at a
    birthday or 1 January, when the profile's recheck rewrites it."""

    category: str
    level: Level | None
    policy: str

    @property
    def key(self) -> str:
        return f"of_age:{self.category}:{self.level or ''}:{self.policy}"


@dataclass(frozen=True)
class EventFact:
    event: str
    within_days: int | None
    where: tuple[EventFilter, ...]
    fn: AggregateFn
    path: str | None  # the property aggregated; None for count

    @property
    def key(self) -> str:
        where = [[f.property, f.op, _json_value(f.value)] for f in self.where]
        body = [self.event, self.within_days, where, self.fn, self.path]
        return "event:" + json.dumps(body, separators=(",", ":"), ensure_ascii=False)


Fact = TraitFact | ConsentFact | OfAgeFact | EventFact


def event_facts(condition: EventCondition) -> dict[AggregateFn, EventFact]:
    """The facts an event condition reads, by what each holds."""
    fns: tuple[AggregateFn, ...]
    match condition.agg:
        case "count":
            fns = ("count",)
        case "sum":
            fns = ("sum",)
        case "avg":
            fns = ("sum", "n")
        case "min":
            fns = ("min",)
        case "max":
            fns = ("max",)
    return {
        fn: EventFact(
            condition.event,
            condition.within_days,
            condition.where,
            fn,
            None if fn == "count" else condition.property,
        )
        for fn in fns
    }


def facts_of(rules: Iterable[Rule], policy: str) -> Iterator[Fact]:
    """Every fact a condition of `rules` reads (with repeats), `of_age_for` under the
    age table whose fingerprint is `policy`."""
    for rule in rules:
        for _, node in walk(rule):
            match node:
                case TraitCondition():
                    yield TraitFact(node.trait)
                case ConsentCondition():
                    yield ConsentFact(node.channel, node.purpose)
                case OfAgeFor():
                    yield OfAgeFact(node.category, node.level, policy)
                case EventCondition():
                    yield from event_facts(node).values()
                case _:
                    pass  # age is a fixed column; the rest are read from their rows


def parse_key(key: str) -> Fact:
    """The fact a key names (the inverse of `.key`); ValueError if it names none."""
    kind, _, rest = key.partition(":")
    if kind == "trait" and rest:
        return TraitFact(rest)
    if kind == "consent":
        channel, _, purpose = rest.partition(":")
        if channel and purpose:
            return ConsentFact(channel, purpose)
    if kind == "of_age":
        category, level, policy = rest.split(":")
        if level and level not in get_args(Level):
            raise ValueError(f"not a verification level: {level!r}")
        return OfAgeFact(category, cast(Level, level) if level else None, policy)
    if kind == "event":
        event, within_days, where, fn, prop = json.loads(rest)
        if fn not in AGGREGATE_FNS:
            raise ValueError(f"not an aggregate: {fn!r}")
        filters = tuple(EventFilter(p, _op(op), _value(v)) for p, op, v in where)
        return EventFact(event, within_days, filters, fn, prop)
    raise ValueError(f"not a fact key: {key!r}")


def _json_value(value: Value) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _value(value: Any) -> Value:
    return tuple(value) if isinstance(value, list) else value


def _op(op: Any) -> Op:
    if op not in get_args(Op):
        raise ValueError(f"not an operator: {op!r}")
    return op  # type: ignore[no-any-return]
