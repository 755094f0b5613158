"""Computed traits: aggregates over a profile's events, declared as data, kept as
ordinary traits so every rule (and destination) can use them.

    lifetime_spend     = sum("Order Completed".total)
    orders_90d         = count("Order Completed" within 90d)
    last_order_at      = last_at("Order Completed")
    favourite_category = most_frequent("Order Completed".products[].category)
    categories         = distinct("Order Completed".products[].category)

As JSON: `{"event": E, "agg": A, "property": P, "where": [...], "within_days": D}` —
the event condition of a segment rule without its comparison, with more aggregates
(`first_at`, `last_at`, `most_frequent`, `distinct`) and `[]` in property paths to
reach into lists.

They are kept up to date incrementally: each processed batch recomputes them for the
profiles it touched (`segments.membership.refresh_profiles`, before segments are
evaluated, so a rule sees the new value), and a windowed one (`within`) is recomputed
by the recheck at the instant an event leaves its window. A new or changed definition
is computed for every profile by a job.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, TypeAlias, get_args

from guestlist.profiles.trait_names import canonical_trait_name
from guestlist.segments.evaluate import _passes, _sum
from guestlist.segments.rules import (
    MAX_WHERE_FILTERS,
    MAX_WITHIN_DAYS,
    EventCondition,
    EventFilter,
    RuleError,
    _child,
    _choice,
    _describe,
    _filter,
    _is_int,
    _name,
    _show,
    exact_number,
    rule_to_json,
)
from guestlist.segments.text import _filter_text, parse_text

ComputedAgg: TypeAlias = Literal[
    "count", "sum", "avg", "min", "max", "first_at", "last_at", "most_frequent", "distinct"
]
COMPUTED_AGGS: Final[tuple[ComputedAgg, ...]] = get_args(ComputedAgg)
_NO_PROPERTY: Final = ("count", "first_at", "last_at")
_PATH: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[\])?(?:\.[A-Za-z_][A-Za-z0-9_]*(?:\[\])?)*")
_TRAIT_NAME: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_DISTINCT: Final = 100  # values kept by `distinct`


@dataclass(frozen=True)
class ComputedTrait:
    name: str
    event: str
    agg: ComputedAgg
    property: str | None = None
    where: tuple[EventFilter, ...] = ()
    within_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event, "agg": self.agg}
        if self.property is not None:
            out["property"] = self.property
        if self.where:
            out["where"] = [filter_json(f) for f in self.where]
        if self.within_days is not None:
            out["within_days"] = self.within_days
        return out

    def to_text(self) -> str:
        inner = f'"{self.event}"' + (f".{self.property}" if self.property else "")
        if self.where:
            inner += " where " + " and ".join(_filter_text(f) for f in self.where)
        if self.within_days is not None:
            inner += f" within {self.within_days}d"
        return f"{self.agg}({inner})"

    def compute(
        self, events: Sequence[tuple[str, datetime, Mapping[str, Any] | None]], now: datetime
    ) -> Any:
        """The value for one profile's events (None: no value)."""
        cutoff = None if self.within_days is None else now - timedelta(days=self.within_days)
        filters = [(f.op, f.value, f.value_set, f.property.split(".")) for f in self.where]
        matching = [
            (timestamp, properties or {})
            for name, timestamp, properties in events
            if name == self.event
            and (cutoff is None or timestamp >= cutoff)
            and (not filters or _passes(filters, properties or {}))
        ]
        if self.agg == "count":
            return len(matching)
        if self.agg in ("first_at", "last_at"):
            if not matching:
                return None
            pick = min if self.agg == "first_at" else max
            return pick(t for t, _ in matching).isoformat()
        assert self.property is not None
        found = [v for _, props in matching for v in _values(props, self.property)]
        if self.agg in ("most_frequent", "distinct"):
            labels = [
                v for v in found if isinstance(v, str | int | float) and not isinstance(v, bool)
            ]
            if not labels:
                return None
            if self.agg == "distinct":
                return sorted({str(v) for v in labels})[:MAX_DISTINCT]
            counts = Counter(str(v) for v in labels)
            # Most frequent; a tie goes to the alphabetically first (stable, explainable).
            return min(counts, key=lambda v: (-counts[v], v))
        numbers = [
            exact_number(v) for v in found if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        if self.agg == "sum":
            return _json_number(_sum(numbers))
        if not numbers:
            return None
        match self.agg:
            case "avg":
                return _json_number(_sum(numbers) / Decimal(len(numbers)))
            case "min":
                return _json_number(min(numbers))
            case "max":
                return _json_number(max(numbers))
        raise AssertionError(self.agg)


def filter_json(flt: EventFilter) -> dict[str, Any]:
    """A where filter's JSON (as in a segment rule)."""
    cond = rule_to_json(EventCondition("e", "gte", 0, where=(flt,)))
    return dict(cond["where"][0])


def _json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)


def _values(properties: Mapping[str, Any], path: str) -> Iterator[Any]:
    """Every value at `path`; a step ending in [] goes into each item of a list."""
    current: list[Any] = [properties]
    for step in path.split("."):
        into = step.endswith("[]")
        key = step[:-2] if into else step
        nxt: list[Any] = []
        for item in current:
            if not isinstance(item, Mapping):
                continue
            value = item.get(key)
            if into:
                if isinstance(value, list):
                    nxt.extend(value)
            elif value is not None:
                nxt.append(value)
        current = nxt
    yield from current


def parse_computed(name: Any, data: Any) -> ComputedTrait:
    """A computed trait from its name and JSON definition; RuleError with a pointer."""
    if not isinstance(name, str) or not _TRAIT_NAME.fullmatch(name):
        raise RuleError("/name", "a computed trait's name is snake_case, e.g. lifetime_spend")
    if canonical_trait_name(name) != name:
        raise RuleError("/name", f"{name!r} reads as the trait {canonical_trait_name(name)!r}")
    if not isinstance(data, dict):
        raise RuleError(
            "",
            f"a computed trait is an object such as "
            f'{{"event": "Order Completed", "agg": "sum", "property": "total"}}, '
            f"got {_describe(data)}",
        )
    for key in data:
        if key not in ("event", "agg", "property", "where", "within_days"):
            raise RuleError(
                _child("", key),
                f"unknown key {key!r}; a computed trait takes "
                "event, agg, property, where, within_days",
            )
    if "event" not in data:
        raise RuleError("/event", "a computed trait needs the event it aggregates")
    event = _name(data["event"], "/event", "event name")
    agg = _choice(data, "agg", COMPUTED_AGGS, "", "aggregate", default="count")
    prop = data.get("property")
    if agg in _NO_PROPERTY:
        if prop is not None:
            raise RuleError("/property", f"{agg} takes no property")
    else:
        if not isinstance(prop, str) or not _PATH.fullmatch(prop):
            raise RuleError(
                "/property",
                f"{agg} needs a property path such as total or "
                f"products[].category, got {_show(prop)}",
            )
    within = data.get("within_days")
    if within is not None and (not _is_int(within) or not 1 <= within <= MAX_WITHIN_DAYS):
        raise RuleError(
            "/within_days",
            f"within_days is a whole number of days from 1 to "
            f"{MAX_WITHIN_DAYS}, got {_show(within)}",
        )
    raw_where = data.get("where") or []
    if not isinstance(raw_where, list):
        raise RuleError("/where", f"where needs a list of filters, got {_describe(raw_where)}")
    if len(raw_where) > MAX_WHERE_FILTERS:
        raise RuleError("/where", f"at most {MAX_WHERE_FILTERS} filters")
    where = tuple(_filter(item, f"/where/{i}") for i, item in enumerate(raw_where))
    return ComputedTrait(name, event, agg, prop, where, within)


_TEXT: Final = re.compile(
    r'\s*(?P<agg>[a-z_]+)\s*\(\s*(?P<event>"(?:[^"\\]|\\.)*")'
    r"(?:\.(?P<path>[A-Za-z0-9_.\[\]]+))?(?P<rest>.*?)\)\s*",
    re.DOTALL,
)
_WITHIN: Final = re.compile(r"(?P<head>.*?)\s*\bwithin\s+(?P<days>[0-9]+)d\s*$", re.DOTALL)


def parse_computed_text(name: str, text: str) -> ComputedTrait:
    """`sum("Order Completed".total where category = "bourbon" within 90d)`."""
    found = _TEXT.fullmatch(text)
    if found is None:
        raise RuleError(
            "",
            'write it as AGG("Event".property where … within Nd), e.g. '
            'sum("Order Completed".total)',
        )
    data: dict[str, Any] = {"event": json.loads(found["event"]), "agg": found["agg"]}
    if found["path"]:
        data["property"] = found["path"]
    rest = found["rest"].strip()
    within = _WITHIN.fullmatch(rest)
    if within is not None:
        data["within_days"] = int(within["days"])
        rest = within["head"].strip()
    if rest:
        if not rest.startswith("where "):
            raise RuleError("", f"expected where … or within Nd, got {rest!r}")
        probe = parse_text(f'count("x" {rest}) >= 0')  # the segment grammar's filters
        data["where"] = rule_to_json(probe)["where"]
    return parse_computed(name, data)
