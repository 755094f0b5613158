"""Stored profiles (rows written straight into the store) and the hypothesis strategies
that make them, for the SQL compiler's tests.

A `Population` is a few profiles at one instant `now`, each with traits of mixed JSON
types, events with properties, consent_state rows, identifiers and an age_state row,
some merged away or erased. `insert_population` writes them with plain inserts (fast,
no pipeline).

Rules are of every shape tests/segments/strategies.py's `rules()` makes, but their
names and values come mostly from the population they run on (`pools`): a rule on a
trait nobody has, or comparing with a value nobody holds, tells the two
implementations apart on nothing. Segments used through in_segment get rules of their
own (`segment_rules`). On SQLite, the numbers event sums and averages see are ones
binary floating point holds exactly (`exact_in_binary`): SQLite sums in doubles, the
evaluator exactly (docs/segments.md, "How rules run in the database").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, TypeGuard

from hypothesis import strategies as st
from sqlalchemy import Connection, null

from guestlist.age import default_policy
from guestlist.segments.evaluate import completed_years, date_part
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
    Agg,
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
    Scalar,
    TraitCondition,
    Value,
    exact_number,
)
from guestlist.store.tables import age_state, consent_state, events, identifiers, profiles, traits
from tests.segments.strategies import (
    CATEGORIES,
    EVENT_NAMES,
    PROPERTY_PATHS,
    SEGMENT_SLUGS,
    TRAIT_NAMES,
    WINDOWS,
    dates,
    event_times,
    identifier_conditions,
    numbers,
    of_age_conditions,
    strings,
    values_for,
)

# Instants chosen so that local dates differ from the UTC date somewhere: just after
# midnight in Berlin (22:30 UTC), New Year in Seoul, still 28 February in Honolulu,
# a leap day, and a plain noon.
NOWS: Final = (
    datetime(2025, 6, 15, 12, 0, tzinfo=UTC),
    datetime(2025, 6, 14, 22, 30, tzinfo=UTC),
    datetime(2024, 12, 31, 15, 30, tzinfo=UTC),
    datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, tzinfo=UTC),
)
# Canonical codes the table names (with rows, with a zone only, a calendar-year one),
# subdivisions it does not name (judged as their country), a country it does not know,
# and codes age/records.py never writes (never of age).
JURISDICTIONS: Final = (
    "US",
    "US-CA",
    "US-TX",
    "US-ZZ",
    "DE",
    "DE-BY",
    "KR",
    "JP",
    "GB",
    "CA-QC",
    "XX",
    "us-ca",
    "U",
)
STORED_LEVELS: Final = (*LEVELS, "DOB_PROVIDED", "unknown")
STATUSES: Final = ("granted", "denied", "withdrawn", "pending")
SOURCE_ID: Final = 1


class _SqlNull:
    """A trait stored as SQL NULL rather than JSON null (both mean absent)."""

    def __repr__(self) -> str:
        return "SQL_NULL"


SQL_NULL: Final = _SqlNull()


@dataclass(frozen=True)
class StoredEvent:
    name: str | None
    timestamp: datetime
    properties: Any = None  # stored JSON; SQL_NULL for SQL NULL
    type: str = "track"


@dataclass(frozen=True)
class StoredConsent:
    channel: str
    purpose: str = "marketing"
    status: str = "granted"
    expires_at: datetime | None = None
    identifier_hash: str = "h1"


@dataclass(frozen=True)
class StoredAge:
    dob: date | None
    level: str | None = "dob_provided"
    jurisdiction: str | None = "US"


@dataclass(frozen=True)
class StoredProfile:
    id: int
    traits: Mapping[str, Any] = field(default_factory=dict)  # SQL_NULL for SQL NULL
    events: Sequence[StoredEvent] = ()
    identifiers: frozenset[tuple[str, str]] = frozenset()
    consents: Sequence[StoredConsent] = ()
    age: StoredAge | None = None
    state: Literal["live", "merged", "erased"] = "live"


@dataclass(frozen=True)
class Population:
    now: datetime
    profiles: tuple[StoredProfile, ...]

    @property
    def ids(self) -> list[int]:
        return [p.id for p in self.profiles]


def insert_population(conn: Connection, population: Population) -> None:
    """Write the profiles and their rows with plain inserts."""
    insert_profiles(conn, population.profiles, population.now)


def insert_profiles(conn: Connection, stored: Sequence[StoredProfile], now: datetime) -> None:
    at = now - timedelta(days=1000)
    survivor = stored[0].id if stored else None
    conn.execute(
        profiles.insert(),
        [
            {
                "id": p.id,
                "created_at": at,
                "first_seen_at": at,
                "last_seen_at": at,
                "merged_into": survivor if p.state == "merged" else None,
                "erased_at": now if p.state == "erased" else None,
            }
            for p in stored
        ],
    )
    _insert(
        conn,
        traits,
        [
            {
                "profile_id": p.id,
                "name": name,
                "value": _json(value),
                "event_time": at,
                "updated_at": at,
            }
            for p in stored
            for name, value in p.traits.items()
        ],
    )
    _insert(
        conn,
        events,
        [
            {
                "profile_id": p.id,
                "source_id": SOURCE_ID,
                "message_id": f"m{p.id}-{i}",
                "type": e.type,
                "name": e.name,
                "properties": _json(e.properties),
                "timestamp": e.timestamp,
                "received_at": e.timestamp,
            }
            for p in stored
            for i, e in enumerate(p.events)
        ],
    )
    _insert(
        conn,
        identifiers,
        [
            {
                "profile_id": p.id,
                "kind": kind,
                "key": key,
                "value": key,
                "first_seen_at": at,
            }
            for p in stored
            for kind, key in sorted(p.identifiers)
        ],
    )
    _insert(
        conn,
        consent_state,
        [
            {
                "profile_id": p.id,
                "channel": c.channel,
                "purpose": c.purpose,
                "identifier_hash": c.identifier_hash,
                "identifier": c.identifier_hash,
                "status": c.status,
                "kind": "express" if c.expires_at is None else "implied",
                "event_time": at,
                "expires_at": c.expires_at,
                "record_id": i,
            }
            for p in stored
            for i, c in enumerate(p.consents)
        ],
    )
    _insert(
        conn,
        age_state,
        [
            {
                "profile_id": p.id,
                "dob": p.age.dob,
                "level": p.age.level,
                "jurisdiction": p.age.jurisdiction,
                "conflict": False,
                "updated_at": at,
            }
            for p in stored
            if p.age is not None
        ],
    )


def _insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(table.insert(), rows)


def _json(value: Any) -> Any:
    return null() if value is SQL_NULL else value


# -- values ---------------------------------------------------------------------------

ODD_STRINGS: Final = (
    "2024-01-01T10:00:00Z",
    "2025-06-15 08:00",
    "2024-01-01Z",
    "2024-1-1",
    "2024-06-15\n",
    "12",
    "1.5",
    "true",
)


def exact_in_binary() -> st.SearchStrategy[Number]:
    """Numbers whose sums of a few stay exact in binary floating point: whole numbers
    up to 2^40 and quarters."""
    return st.one_of(
        st.sampled_from((0, 1, 2, 3, -1, 12, 100, 0.5, 1.5, 2.0, 100.0, 99.75, 0.25)),
        st.integers(-(2**40), 2**40),
        st.integers(-4000, 4000).map(lambda n: n / 4),
    )


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn in proportion to its weight. (`st.one_of`
    counts a strategy given twice once, so it cannot weigh.)"""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def _often(common: Sequence[str], every: Sequence[str]) -> st.SearchStrategy[str]:
    """Mostly one of `common` (so profiles share names), sometimes any of `every`."""
    return weighted((2, st.sampled_from(tuple(common))), (1, st.sampled_from(tuple(every))))


def stored_scalars(number: st.SearchStrategy[Number]) -> st.SearchStrategy[Any]:
    """Scalars as stored JSON: numbers (from `number`), strings (numbers and dates
    written as strings among them), booleans, null."""
    return st.one_of(
        strings(),
        number,
        dates(),
        st.sampled_from(ODD_STRINGS),
        st.booleans(),
        st.none(),
    )


def stored_values(number: st.SearchStrategy[Number]) -> st.SearchStrategy[Any]:
    """Trait or property values as stored JSON: mostly scalars, sometimes lists and
    objects of them (nested)."""
    scalars = stored_scalars(number)
    nested = st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(("country", "amount", "category")), inner, max_size=2),
        ),
        max_leaves=4,
    )
    return weighted((2, scalars), (1, nested))


def _typical_traits() -> dict[str, st.SearchStrategy[Any]]:
    """Traits as a shop has them, from small pools so that profiles share values."""
    spend = st.sampled_from((0, 12, 99.75, 100, 100.0, 250.5, "100", None))
    return {
        "city": st.sampled_from(("Austin", "Dallas", "austin", "Austin ", None, SQL_NULL)),
        "lifetime_spend": spend,
        "tags": st.lists(st.sampled_from(("gift", "vip-excluded", "VIP", "vip")), max_size=3),
        "signup_date": st.sampled_from(
            ("2024-01-01", "2024-01-01T10:00:00Z", "2023-12-31 23:59", "2025-06-15", "2024-1-1")
        ),
        "score": st.one_of(spend, st.booleans()),
    }


def _trait_values() -> st.SearchStrategy[Any]:
    values = stored_values(numbers())
    return weighted((3, values), (1, st.just(SQL_NULL)))


def _properties(number: st.SearchStrategy[Number]) -> st.SearchStrategy[Any]:
    keys = _often(("total", "category"), ("total", "category", "quantity", "tags", "shipping"))
    shipping = st.dictionaries(
        st.sampled_from(("country", "cost")), stored_scalars(number), min_size=1, max_size=2
    )
    values = st.one_of(stored_values(number), shipping)
    return weighted(
        (4, st.dictionaries(keys, values, min_size=1, max_size=4)),
        (1, st.none()),
        (1, st.just(SQL_NULL)),
    )


@st.composite
def stored_events(draw: st.DrawFn, now: datetime, number: st.SearchStrategy[Number]) -> StoredEvent:
    """An order like a shop sends (total, category, shipping), mostly; sometimes any
    event with any properties."""
    if draw(st.sampled_from((True, True, False))):
        small = weighted((2, st.sampled_from((0, 1, 2.5, 10, 12, 100, 99.75))), (1, number))
        properties: dict[str, Any] = {
            "total": draw(weighted((3, small), (1, stored_scalars(number)))),
            "category": draw(st.sampled_from(("bourbon", "tequila", "Bourbon", "gin"))),
        }
        if draw(st.booleans()):
            properties["shipping"] = {
                "country": draw(st.sampled_from(("US", "DE", "us"))),
                "cost": draw(small),
            }
        return StoredEvent("Order Completed", draw(event_times(now)), properties)
    return StoredEvent(
        name=draw(st.sampled_from(EVENT_NAMES)),
        timestamp=draw(event_times(now)),
        properties=draw(_properties(number)),
        type=draw(st.sampled_from(("track", "page", "identify"))),
    )


@st.composite
def stored_consents(draw: st.DrawFn, now: datetime) -> list[StoredConsent]:
    """consent_state rows (one per channel, purpose and identifier), with expiries at
    and next to `now`."""
    expiries = st.sampled_from(
        (
            now,
            now - timedelta(microseconds=1),
            now + timedelta(microseconds=1),
            now + timedelta(days=30),
            now - timedelta(days=30),
        )
    )
    keyed = draw(
        st.dictionaries(
            st.tuples(
                st.sampled_from(CHANNELS), st.sampled_from(PURPOSES), st.sampled_from(("h1", "h2"))
            ),
            st.tuples(st.sampled_from(STATUSES), st.one_of(st.none(), expiries)),
            max_size=4,
        )
    )
    return [
        StoredConsent(channel, purpose, status, expires, identifier_hash)
        for (channel, purpose, identifier_hash), (status, expires) in keyed.items()
    ]


@st.composite
def birth_dates(draw: st.DrawFn, now: datetime) -> date | None:
    """Mostly next to a coming of age somewhere: N years before a date near `now`,
    around 29 February, around New Year (calendar-year rules)."""
    today = now.date()
    years = draw(st.sampled_from((21, 18, 19, 25, 20, 16)))
    near = draw(st.integers(-2, 2))
    return draw(
        st.one_of(
            st.just(_years_before(today, years) + timedelta(days=near)),
            st.sampled_from(
                (
                    date(2004, 2, 29),
                    date(2007, 2, 28),
                    date(2007, 3, 1),
                    date(today.year - 19, 12, 31),
                    date(today.year - 19, 1, 1),
                    date(today.year - 18, 1, 1),
                    today + timedelta(days=1),
                )
            ),
            st.dates(date(1900, 1, 1), today + timedelta(days=2)),
            st.none(),
        )
    )


def coming_of_age_dates(now: datetime, jurisdiction: str | None) -> list[date]:
    """Dates of birth at the edge of legal age in `jurisdiction` at `now`, for every
    category: the latest one that is of age on its local date, and the days next to
    it, by birthday and by calendar year."""
    policy = default_policy()
    try:
        today = now.astimezone(policy.zone(jurisdiction or "")).date()
    except (ValueError, LookupError):
        return []
    out: set[date] = set()
    for category in CATEGORIES:
        try:
            minimum = policy.minimum_age(jurisdiction or "", category)
        except ValueError:
            continue
        if minimum is not None:
            for edge in (_years_before(today, minimum), date(today.year - minimum, 12, 31)):
                out.update(edge + timedelta(days=n) for n in (-1, 0, 1))
    return sorted(out)


@st.composite
def stored_ages(draw: st.DrawFn, now: datetime) -> StoredAge:
    """Mostly facts that can be of age somewhere (a level, a known jurisdiction), and
    dates of birth at the edge of legal age there."""
    levels = st.sampled_from(tuple(reversed(LEVELS)))  # strongest first
    places = st.sampled_from(JURISDICTIONS[:10])
    jurisdiction = draw(weighted((3, places), (1, st.none()), (1, st.sampled_from(JURISDICTIONS))))
    edges = coming_of_age_dates(now, jurisdiction)
    dob = draw(
        weighted((2, st.sampled_from(edges)), (1, birth_dates(now))) if edges else birth_dates(now)
    )
    return StoredAge(
        dob=dob,
        level=draw(weighted((3, levels), (1, st.none()), (1, st.sampled_from(STORED_LEVELS)))),
        jurisdiction=jurisdiction,
    )


@st.composite
def stored_profiles(
    draw: st.DrawFn, pid: int, now: datetime, number: st.SearchStrategy[Number]
) -> StoredProfile:
    return StoredProfile(
        id=pid,
        traits={
            **draw(st.dictionaries(st.sampled_from(TRAIT_NAMES), _trait_values(), max_size=3)),
            **draw(st.fixed_dictionaries({}, optional=_typical_traits())),
        },
        events=tuple(
            draw(
                weighted(
                    (3, st.lists(stored_events(now, number), min_size=1, max_size=6)),
                    (1, st.lists(stored_events(now, number), max_size=1)),
                )
            )
        ),
        identifiers=draw(
            st.frozensets(
                st.tuples(st.sampled_from(IDENTIFIER_TYPES), st.sampled_from(("k1", "k2"))),
                max_size=3,
            )
        ),
        consents=tuple(draw(stored_consents(now))),
        age=draw(weighted((2, stored_ages(now)), (1, st.none()))),
        state=draw(st.sampled_from(("live", "live", "live", "live", "merged", "erased"))),
    )


@st.composite
def populations(draw: st.DrawFn, *, exact_sums: bool) -> Population:
    """Two to five profiles at one of NOWS. `exact_sums`: the database sums exactly
    (PostgreSQL), so event properties may hold any number."""
    now = draw(st.sampled_from(NOWS))
    number = numbers() if exact_sums else exact_in_binary()
    size = draw(st.integers(2, 5))
    return Population(
        now, tuple(draw(stored_profiles(pid, now, number)) for pid in range(1, size + 1))
    )


# -- what a population holds ----------------------------------------------------------


@dataclass(frozen=True)
class ValuePool:
    """Values a comparison can hit exactly or at an edge."""

    scalars: tuple[Scalar, ...] = ()  # stored strings, numbers, booleans, list elements
    pieces: tuple[str, ...] = ()  # non-empty prefixes and substrings of the strings
    dates: tuple[str, ...] = ()  # dates of date-like strings and the days next to them

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints the arguments of every strategy it draws from; printing
        # whole pools took half the test's time.
        printer.text(f"ValuePool({len(self.scalars)} values)")

    @classmethod
    def of(cls, values: Iterable[Any]) -> ValuePool:
        found: list[Any] = []
        for value in values:
            _scalars(value, found)
        scalars = sorted({(type(v).__name__, v) for v in found}, key=repr)
        strings = [v for _, v in scalars if isinstance(v, str) and v]
        pieces = {
            s[i:j] for s in strings for i in range(min(len(s), 2)) for j in range(i + 1, len(s) + 1)
        }
        days: set[str] = set()
        for text in strings:
            day = _calendar_date(text)
            if day is not None and date(1, 1, 2) <= day <= date(9999, 12, 30):
                days.update((day + timedelta(days=n)).isoformat() for n in (-1, 0, 1))
        return cls(tuple(v for _, v in scalars), tuple(sorted(pieces)), tuple(sorted(days)))


@dataclass(frozen=True)
class Pools:
    """What a population holds, for rules that meet it."""

    everything: ValuePool
    traits: Mapping[str, ValuePool]  # per trait name
    properties: Mapping[str, ValuePool]  # per property path
    event_names: tuple[str, ...]  # of track events, once per event (common ones weigh more)
    numeric_paths: tuple[str, ...]  # paths holding numbers, once per number
    targets: tuple[Number, ...]  # what event aggregates come to
    ages: tuple[int, ...]  # completed years of the dates of birth, and their neighbours
    consents: tuple[tuple[str, str], ...]  # (channel, purpose) pairs with a state
    windows: tuple[int, ...]  # whole days back to the events (either side of each)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(f"Pools({len(self.traits)} traits, {len(self.properties)} properties)")


def pools(population: Population, *, exact_sums: bool) -> Pools:
    by_trait: dict[str, list[Any]] = {}
    by_path: dict[str, list[Any]] = {}
    for p in population.profiles:
        for name, value in p.traits.items():
            by_trait.setdefault(name, []).append(value)
        for e in p.events:
            if isinstance(e.properties, dict):
                for key, value in e.properties.items():
                    by_path.setdefault(key, []).append(value)
                    if isinstance(value, dict):
                        for inner, deeper in value.items():
                            by_path.setdefault(f"{key}.{inner}", []).append(deeper)
    everything = [v for values in (*by_trait.values(), *by_path.values()) for v in values]
    today = population.now.astimezone(UTC).date()
    ages: set[int] = set()
    for p in population.profiles:
        years = None if p.age is None or p.age.dob is None else completed_years(p.age.dob, today)
        if years is not None:
            ages.update(a for a in (years - 1, years, years + 1) if 0 <= a <= MAX_AGE)
    targets = {t for t in _aggregate_targets(population) if exact_sums or _exact_in_binary(t)}
    return Pools(
        everything=ValuePool.of(everything),
        traits={name: ValuePool.of(values) for name, values in by_trait.items()},
        properties={path: ValuePool.of(values) for path, values in by_path.items()},
        event_names=tuple(
            sorted(
                e.name
                for p in population.profiles
                for e in p.events
                if e.type == "track" and e.name is not None
            )
        ),
        numeric_paths=tuple(
            sorted(path for path, values in by_path.items() for v in values if _is_number(v))
        ),
        targets=tuple(sorted(targets, key=lambda v: (exact_number(v), repr(v)))),
        ages=tuple(sorted(ages)),
        consents=tuple(
            sorted({(c.channel, c.purpose) for p in population.profiles for c in p.consents})
        ),
        windows=tuple(sorted(_windows(population))),
    )


def _windows(population: Population) -> set[int]:
    """`within_days` values whose edge falls next to an event: the whole days back to
    it, rounded down and up."""
    out: set[int] = set()
    day = timedelta(days=1)
    for p in population.profiles:
        for e in p.events:
            back = population.now - e.timestamp
            if back > timedelta(0):
                whole = back // day
                out.update(d for d in (whole, whole + 1) if 1 <= d <= 36_500)
    return out


def _scalars(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _scalars(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            _scalars(item, out)
    elif isinstance(value, str | bool) or _is_number(value):
        out.append(value)


def _calendar_date(text: str) -> date | None:
    day = date_part(text)
    try:
        return None if day is None else date.fromisoformat(day)
    except ValueError:
        return None


def _is_number(value: Any) -> TypeGuard[Number]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _exact_in_binary(value: Number) -> bool:
    return abs(value) < 2**50 and Decimal(float(value)) == exact_number(value)


def _aggregate_targets(population: Population) -> set[Number]:
    """Per profile, event name and top-level property: the count, sum, min, max and
    (when a rule number can hold it exactly) the average of its track events."""
    out: set[Number] = {0, 1, 2}
    for p in population.profiles:
        by_name: dict[str, list[dict[str, Any]]] = {}
        for e in p.events:
            if e.type == "track" and e.name:
                props = e.properties if isinstance(e.properties, dict) else {}
                by_name.setdefault(e.name, []).append(props)
        for group in by_name.values():
            out.add(len(group))
            for key in {k for props in group for k in props}:
                found = [props[key] for props in group if _is_number(props.get(key))]
                if not found:
                    continue
                exact = [exact_number(v) for v in found]
                total = sum(exact, Decimal(0))
                out.update((min(found), max(found)))
                for candidate in (total, total / len(exact)):
                    as_number = _as_number(candidate)
                    if as_number is not None:
                        out.add(as_number)
    return out


def _as_number(value: Decimal) -> Number | None:
    """A rule number that stands for exactly `value`, if there is one."""
    if value == value.to_integral_value():
        whole = int(value)
        return whole if abs(whole) <= SAFE_INTEGER else None
    as_float = float(value)
    if math.isfinite(as_float) and exact_number(as_float) == value:
        return as_float
    return None


# -- rules ----------------------------------------------------------------------------


def _pick(pool: Sequence[Any], fallback: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly from `pool` (when it holds anything), sometimes anything."""
    if not pool:
        return fallback
    sample = st.sampled_from(tuple(pool))
    return weighted((3, sample), (1, fallback))


def _values_for(op: Op, pool: ValuePool) -> st.SearchStrategy[Value]:
    """A value `op` accepts (tests/segments/strategies.py's `values_for`), mostly
    one from `pool`."""
    anything = values_for(op)
    strings_ = [v for v in pool.scalars if isinstance(v, str)]
    numbers_ = [v for v in pool.scalars if _is_number(v) and _rule_number(v)]
    if op in ("exists", "not_exists"):
        return st.none()
    if op in ("eq", "ne"):
        return _pick(
            [v for v in pool.scalars if isinstance(v, str | bool) or v in numbers_], anything
        )
    if op in ("lt", "lte", "gt", "gte"):
        return _pick([*numbers_, *pool.dates], anything)
    if op in ("in", "not_in"):
        texts = st.lists(_pick(strings_, strings()), min_size=1, max_size=3).map(tuple)
        amounts = st.lists(_pick(numbers_, numbers()), min_size=1, max_size=3).map(tuple)
        return st.one_of(texts, amounts, anything)
    return _pick(pool.pieces, anything)  # contains, starts_with


def _rule_number(value: Number) -> bool:
    return not isinstance(value, int) or abs(value) <= SAFE_INTEGER


@st.composite
def _comparison(draw: st.DrawFn, pool: ValuePool, everything: ValuePool) -> tuple[Op, Value]:
    op: Op = draw(st.sampled_from(OPS))
    chosen = draw(st.sampled_from((pool, pool, pool, everything)))
    return op, draw(_values_for(op, chosen))


@st.composite
def _trait_conditions(draw: st.DrawFn, pools: Pools) -> TraitCondition:
    name = draw(_pick(sorted(pools.traits), st.sampled_from(TRAIT_NAMES)))
    pool = pools.traits.get(name, pools.everything)
    return TraitCondition(name, *draw(_comparison(pool, pools.everything)))


@st.composite
def _event_filters(draw: st.DrawFn, pools: Pools) -> EventFilter:
    path = draw(_pick(sorted(pools.properties), st.sampled_from(PROPERTY_PATHS)))
    pool = pools.properties.get(path, pools.everything)
    return EventFilter(path, *draw(_comparison(pool, pools.everything)))


@st.composite
def _event_conditions(
    draw: st.DrawFn,
    pools: Pools,
    exact_sums: bool,
    agg: Agg | None = None,
    where: tuple[EventFilter, ...] | None = None,
) -> EventCondition:
    chosen: Agg = agg if agg is not None else draw(st.sampled_from(AGGS))
    paths = _pick(pools.numeric_paths, st.sampled_from(PROPERTY_PATHS))
    number = numbers() if exact_sums else exact_in_binary()
    return EventCondition(
        draw(_pick(pools.event_names, st.sampled_from(EVENT_NAMES))),
        draw(st.sampled_from(EVENT_OPS)),
        draw(_pick(pools.targets, number)),
        within_days=draw(
            weighted(
                (2, st.none()),
                (2, _pick(pools.windows, st.sampled_from(WINDOWS))),
                (1, st.integers(1, 36_500)),
            )
        ),
        agg=chosen,
        property=None if chosen == "count" else draw(paths),
        where=where
        if where is not None
        else tuple(draw(st.one_of(st.just([]), st.lists(_event_filters(pools), max_size=2)))),
    )


@st.composite
def _consent_conditions(draw: st.DrawFn, pools: Pools) -> ConsentCondition:
    everywhere = st.tuples(st.sampled_from(CHANNELS), st.sampled_from(PURPOSES))
    channel, purpose = draw(_pick(pools.consents, everywhere))
    return ConsentCondition(channel, purpose, draw(st.sampled_from(CONSENT_IS)))


@st.composite
def _age_conditions(draw: st.DrawFn, pools: Pools) -> AgeCondition:
    op = draw(st.sampled_from(AGE_OPS))
    if op in PRESENCE_OPS:
        return AgeCondition(op)
    return AgeCondition(op, draw(_pick(pools.ages, st.integers(0, MAX_AGE))))


def conditions(
    pools: Pools, *, exact_sums: bool, slugs: Sequence[str] = SEGMENT_SLUGS
) -> st.SearchStrategy[Rule]:
    """Any single condition, mostly meeting `pools`; in_segment only on `slugs`."""
    parts: list[tuple[int, st.SearchStrategy[Any]]] = [
        (3, _trait_conditions(pools)),
        (3, _event_conditions(pools, exact_sums)),
        (1, _consent_conditions(pools)),
        (1, _age_conditions(pools)),
        (2, of_age_conditions()),
        (1, identifier_conditions()),
    ]
    if slugs:
        parts.append((1, st.builds(InSegment, st.sampled_from(tuple(slugs)))))
    return weighted(*parts)


def db_rules(
    pools: Pools, *, exact_sums: bool, max_leaves: int = 8, slugs: Sequence[str] = SEGMENT_SLUGS
) -> st.SearchStrategy[Rule]:
    """Rules of every shape, names and values mostly from `pools`. On SQLite
    (`exact_sums` False) event aggregates compare with numbers exact in binary."""

    def groups(children: st.SearchStrategy[Rule]) -> st.SearchStrategy[Rule]:
        members = st.lists(children, min_size=1, max_size=4).map(tuple)
        return st.one_of(members.map(And), members.map(Or), children.map(Not))

    leaves = conditions(pools, exact_sums=exact_sums, slugs=slugs)
    return st.recursive(leaves, groups, max_leaves=max_leaves)


@st.composite
def condition_sweep(draw: st.DrawFn, pools: Pools, *, exact_sums: bool) -> list[Rule]:
    """Conditions of every kind with every operator, values from `pools`, and the
    negation of each: every trait operator on up to three traits, every operator as an
    event filter, every aggregate, every age operator, every category, the consent
    pairs and identifier types the profiles hold."""
    out: list[Rule] = []
    names = draw(
        st.lists(
            _pick(sorted(pools.traits), st.sampled_from(TRAIT_NAMES)),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    for name in names:
        pool = pools.traits.get(name, pools.everything)
        for op in OPS:
            chosen = draw(st.sampled_from((pool, pool, pool, pools.everything)))
            out.append(TraitCondition(name, op, draw(_values_for(op, chosen))))
    path = draw(_pick(sorted(pools.properties), st.sampled_from(PROPERTY_PATHS)))
    pool = pools.properties.get(path, pools.everything)
    for op in OPS:
        flt = EventFilter(path, op, draw(_values_for(op, pool)))
        out.append(draw(_event_conditions(pools, exact_sums, agg="count", where=(flt,))))
    for agg in AGGS:
        for _ in range(2):
            out.append(draw(_event_conditions(pools, exact_sums, agg=agg)))
    ages = draw(st.lists(_pick(pools.ages, st.integers(0, MAX_AGE)), min_size=1, max_size=2))
    for op in AGE_OPS:
        for years in ages if op not in PRESENCE_OPS else [None]:
            out.append(AgeCondition(op, years))
    for category in CATEGORIES:
        out.append(OfAgeFor(category, draw(st.one_of(st.none(), st.sampled_from(LEVELS)))))
    pairs = pools.consents or ((draw(st.sampled_from(CHANNELS)), "marketing"),)
    for channel, purpose in pairs:
        out.append(ConsentCondition(channel, purpose, "granted"))  # type: ignore[arg-type]
    for kind in IDENTIFIER_TYPES:
        out.append(IdentifierCondition(kind, "exists"))
    return out + [Not(rule) for rule in out]


@st.composite
def segment_rules(draw: st.DrawFn, pools: Pools, *, exact_sums: bool) -> dict[str, Rule]:
    """A rule for each slug in SEGMENT_SLUGS; each may use only the slugs after it,
    so they form no cycle."""
    out: dict[str, Rule] = {}
    for i, slug in enumerate(SEGMENT_SLUGS):
        later = SEGMENT_SLUGS[i + 1 :]
        out[slug] = draw(db_rules(pools, exact_sums=exact_sums, max_leaves=4, slugs=later))
    return out


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


@dataclass(frozen=True)
class Example:
    """One differential example: profiles, the segments they may be in, rules."""

    population: Population
    segments: Mapping[str, Rule]
    rules: tuple[Rule, ...]  # random rules, and the sweep of every operator


@st.composite
def examples(draw: st.DrawFn, *, exact_sums: bool) -> Example:
    population = draw(populations(exact_sums=exact_sums))
    held = pools(population, exact_sums=exact_sums)
    segments = draw(segment_rules(held, exact_sums=exact_sums))
    rules = draw(st.lists(db_rules(held, exact_sums=exact_sums), min_size=1, max_size=5))
    sweep = draw(condition_sweep(held, exact_sums=exact_sums))
    return Example(population, segments, (*rules, *sweep))
