"""Hypothesis strategies for segment rules and for the profiles they run on.

Names and values come mostly from small shared pools, so that generated rules and
generated profiles meet (a rule on a trait no profile has tests little), with
arbitrary values mixed in. Every rule drawn is valid: `parse_rule(rule_to_json(r))`
returns it. Reused by the SQL compiler's differential test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from guestlist.segments.evaluate import ProfileEvent, ProfileView
from guestlist.segments.rules import (
    AGE_OPS,
    AGGS,
    CHANNELS,
    CONSENT_IS,
    EVENT_OPS,
    IDENTIFIER_TYPES,
    LEVELS,
    MAX_AGE,
    OPS,
    PRESENCE_OPS,
    PURPOSES,
    SAFE_INTEGER,
    AgeCondition,
    And,
    ConsentCondition,
    EventCondition,
    EventFilter,
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
)

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)

TRAIT_NAMES = (
    "city",
    "lifetime_spend",
    "tags",
    "vip",
    "signup_date",
    "score",
    "favourite_category",
    "address",
    "age",
    "2fa",
)
EVENT_NAMES = ("Order Completed", "Product Viewed", "order completed")
PROPERTY_PATHS = ("total", "category", "quantity", "tags", "shipping.country", "shipping")
SEGMENT_SLUGS = ("vip", "churn-risk", "newsletter_2024")
CATEGORIES = ("alcohol", "tobacco", "vape", "cannabis", "alcohol.spirits", "alcohol.beer_wine")
CONSENT_STATUSES = ("granted", "withdrawn", "denied", "expired", "pending")
WORDS = (
    "Austin",
    "Dallas",
    "austin",
    "bourbon",
    "tequila",
    "A",
    "Ab",
    "12",
    "1.5",
    "true",
    "US",
    "2024-01-01",
    "é",
)
NUMBERS: tuple[Number, ...] = (0, 1, 2, 3, -1, 12, 100, 0.1, 0.2, 0.3, 0.5, 1.5, 2.0, 99.99, 100.0)
DATES = ("2000-02-29", "2024-01-01", "2024-12-31", "2025-06-14", "2025-06-15", "2025-06-16")
WINDOWS = (1, 7, 30, 90, 365)

_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")  # no surrogates, no NUL


def strings(*, min_size: int = 0) -> st.SearchStrategy[str]:
    """Pool words mostly, sometimes any text a rule may hold (no NUL, no surrogates)."""
    pool = st.sampled_from([w for w in WORDS if len(w) >= min_size])
    return st.one_of(pool, pool, st.text(_TEXT, min_size=min_size, max_size=6))


def numbers() -> st.SearchStrategy[Number]:
    """Pool numbers mostly; sometimes any safe integer or any finite float."""
    pool = st.sampled_from(NUMBERS)
    return st.one_of(
        pool,
        pool,
        st.integers(-SAFE_INTEGER, SAFE_INTEGER),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def dates() -> st.SearchStrategy[str]:
    """Dates written YYYY-MM-DD, near NOW mostly."""
    return st.one_of(
        st.sampled_from(DATES),
        st.dates(date(1900, 1, 1), date(2100, 12, 31)).map(date.isoformat),
    )


def values_for(op: Op) -> st.SearchStrategy[Value]:
    """A value `op` accepts (docs/segments.md, Values)."""
    if op in ("exists", "not_exists"):
        return st.none()
    if op in ("eq", "ne"):
        return st.one_of(strings(), dates(), numbers(), st.booleans())
    if op in ("lt", "lte", "gt", "gte"):
        return st.one_of(numbers(), dates())
    if op in ("in", "not_in"):
        return st.one_of(
            st.lists(st.one_of(strings(), dates()), min_size=1, max_size=4).map(tuple),
            st.lists(numbers(), min_size=1, max_size=4).map(tuple),
        )
    return strings(min_size=1)  # contains, starts_with


@st.composite
def _comparison(draw: st.DrawFn, ops: tuple[Op, ...] = OPS) -> tuple[Op, Value]:
    op = draw(st.sampled_from(ops))
    return op, draw(values_for(op))


def trait_conditions(
    names: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[TraitCondition]:
    name_strategy = names if names is not None else st.sampled_from(TRAIT_NAMES)
    return st.builds(lambda n, c: TraitCondition(n, *c), name_strategy, _comparison())


def event_filters() -> st.SearchStrategy[EventFilter]:
    return st.builds(
        lambda p, c: EventFilter(p, *c), st.sampled_from(PROPERTY_PATHS), _comparison()
    )


@st.composite
def event_conditions(draw: st.DrawFn) -> EventCondition:
    agg = draw(st.sampled_from(AGGS))
    prop = None if agg == "count" else draw(st.sampled_from(PROPERTY_PATHS))
    return EventCondition(
        draw(st.sampled_from(EVENT_NAMES)),
        draw(st.sampled_from(EVENT_OPS)),
        draw(numbers()),
        within_days=draw(st.one_of(st.none(), st.sampled_from(WINDOWS), st.integers(1, 36_500))),
        agg=agg,
        property=prop,
        where=tuple(draw(st.lists(event_filters(), max_size=2))),
    )


def consent_conditions() -> st.SearchStrategy[ConsentCondition]:
    return st.builds(
        ConsentCondition,
        st.sampled_from(CHANNELS),
        st.sampled_from(PURPOSES),
        st.sampled_from(CONSENT_IS),
    )


@st.composite
def age_conditions(draw: st.DrawFn) -> AgeCondition:
    op = draw(st.sampled_from(AGE_OPS))
    if op in PRESENCE_OPS:
        return AgeCondition(op)
    return AgeCondition(op, draw(st.one_of(st.sampled_from((18, 21, 25)), st.integers(0, MAX_AGE))))


def of_age_conditions() -> st.SearchStrategy[OfAgeFor]:
    return st.builds(
        OfAgeFor, st.sampled_from(CATEGORIES), st.one_of(st.none(), st.sampled_from(LEVELS))
    )


def identifier_conditions() -> st.SearchStrategy[IdentifierCondition]:
    return st.builds(
        IdentifierCondition, st.sampled_from(IDENTIFIER_TYPES), st.sampled_from(PRESENCE_OPS)
    )


def conditions() -> st.SearchStrategy[Rule]:
    """Any single condition."""
    return st.one_of(
        trait_conditions(),
        event_conditions(),
        consent_conditions(),
        age_conditions(),
        of_age_conditions(),
        st.builds(InSegment, st.sampled_from(SEGMENT_SLUGS)),
        identifier_conditions(),
    )


def rules(*, max_leaves: int = 10) -> st.SearchStrategy[Rule]:
    """Any rule: conditions under and/or/not, groups of one included."""

    def groups(children: st.SearchStrategy[Rule]) -> st.SearchStrategy[Rule]:
        members = st.lists(children, min_size=1, max_size=4).map(tuple)
        return st.one_of(members.map(And), members.map(Or), children.map(Not))

    return st.recursive(conditions(), groups, max_leaves=max_leaves)


# -- profiles -----------------------------------------------------------------------


@dataclass(frozen=True)
class OfAgeAnswers:
    """An injected `of_age`: yes exactly for the (category, level) pairs listed."""

    yes: frozenset[tuple[str, str | None]]

    def __call__(self, category: str, level: str | None) -> bool:
        return (category, level) in self.yes


@dataclass(frozen=True)
class Memberships:
    """An injected `segments`: member exactly of the slugs listed."""

    slugs: frozenset[str]

    def __call__(self, slug: str) -> bool:
        return slug in self.slugs


def stored_values() -> st.SearchStrategy[Any]:
    """Trait or property values as stored JSON."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        strings(),
        numbers(),
        dates(),
        st.sampled_from(("2024-01-01T10:00:00Z", "2025-06-15 08:00", "2024-01-01Z", "2024-1-1")),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(("country", "amount", "category")), inner, max_size=2),
        ),
        max_leaves=4,
    )


def event_times(now: datetime = NOW) -> st.SearchStrategy[datetime]:
    """Mostly on and next to window edges (`now` - WINDOWS days, ± 1 µs), some in the
    future, some anywhere in the past few years."""
    edges = st.builds(
        lambda days, nudge: now - timedelta(days=days) + timedelta(microseconds=nudge),
        st.sampled_from((0, *WINDOWS)),
        st.sampled_from((-1, 0, 1)),
    )
    anywhere = st.integers(-10, 3 * 365 * 86_400).map(lambda s: now - timedelta(seconds=s))
    return st.one_of(edges, anywhere)


def event_properties() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from(("total", "category", "quantity", "tags", "shipping"))
    return st.dictionaries(keys, stored_values(), max_size=4)


def profile_events(now: datetime = NOW) -> st.SearchStrategy[ProfileEvent]:
    return st.builds(
        ProfileEvent,
        st.sampled_from(EVENT_NAMES),
        event_times(now),
        st.one_of(st.none(), event_properties()),
    )


@st.composite
def profile_views(draw: st.DrawFn, now: datetime = NOW) -> ProfileView:
    """A profile for rules from `rules()`; `of_age` is an `OfAgeAnswers`."""
    traits = draw(st.dictionaries(st.sampled_from(TRAIT_NAMES), stored_values(), max_size=5))
    identifiers: Mapping[str, frozenset[str]] = draw(
        st.dictionaries(
            st.sampled_from(IDENTIFIER_TYPES),
            st.frozensets(st.sampled_from(("k1", "k2")), max_size=2),
            max_size=3,
        )
    )
    consent: dict[tuple[str, str], str] = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(CHANNELS), st.sampled_from(PURPOSES)),
            st.sampled_from(CONSENT_STATUSES),
            max_size=4,
        )
    )
    today = now.astimezone(UTC).date()
    birthdays = st.builds(
        lambda years, days: _years_before(today, years) + timedelta(days=days),
        st.sampled_from((18, 21, 25)),
        st.sampled_from((-1, 0, 1)),
    )
    dob = draw(
        st.one_of(
            st.none(),
            birthdays,
            st.dates(date(1900, 1, 1), today + timedelta(days=2)),
            st.just(date(2004, 2, 29)),
        )
    )
    pairs = st.tuples(st.sampled_from(CATEGORIES), st.one_of(st.none(), st.sampled_from(LEVELS)))
    return ProfileView(
        traits=traits,
        identifiers=identifiers,
        events=tuple(draw(st.lists(profile_events(now), max_size=6))),
        consent=consent,
        dob=dob,
        verification_level=draw(st.one_of(st.none(), st.sampled_from(LEVELS))),
        jurisdiction=draw(st.sampled_from((None, "US", "US-CA", "DE"))),
        of_age=OfAgeAnswers(draw(st.frozensets(pairs, max_size=4))),
    )


def memberships() -> st.SearchStrategy[Memberships]:
    return st.frozensets(st.sampled_from(SEGMENT_SLUGS)).map(Memberships)


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)
