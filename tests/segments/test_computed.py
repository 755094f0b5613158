"""Computed traits (issue 4, part 4): definitions as data, values kept as traits,
updated incrementally by the pipeline and by rechecks, usable in rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from guestlist.segments.catalog import SegmentError, define_computed, delete_computed
from guestlist.segments.computed import parse_computed, parse_computed_text
from guestlist.segments.membership import compute_everyone, run_due_rechecks
from guestlist.segments.rules import RuleError
from guestlist.store.tables import traits
from guestlist.store.types import utcnow
from tests.segments.test_membership import make, members, order, profile, send

NOW = datetime(2025, 6, 30, tzinfo=UTC)


def ev(days_ago: float, **props: Any) -> tuple[str, datetime, dict[str, Any]]:
    return ("Order Completed", NOW - timedelta(days=days_ago), props)


HISTORY = [
    ev(200, total=40, products=[{"category": "gin"}, {"category": "bourbon"}]),
    ev(30, total=10.1, products=[{"category": "bourbon"}]),
    ev(5, total=20.2, products=[{"category": "tequila"}, {"category": "tequila"}]),
    ("Page Viewed", NOW - timedelta(days=1), {"total": 999}),
]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('sum("Order Completed".total)', 70.3),  # exact decimal sum, then the double
        ('count("Order Completed" within 90d)', 2),
        ('sum("Order Completed".total within 7d)', 20.2),
        ('count("Order Completed" where total > 15)', 2),
        ('avg("Order Completed".total)', pytest.approx(70.3 / 3)),
        ('max("Order Completed".total)', 40),
        ('min("Order Completed".total within 1d)', None),
        ('last_at("Order Completed")', (NOW - timedelta(days=5)).isoformat()),
        ('first_at("Order Completed")', (NOW - timedelta(days=200)).isoformat()),
        # bourbon 2, tequila 2, gin 1: a tie goes to the alphabetically first
        ('most_frequent("Order Completed".products[].category)', "bourbon"),
        ('most_frequent("Order Completed".products[].category within 90d)', "tequila"),
        ('distinct("Order Completed".products[].category)', ["bourbon", "gin", "tequila"]),
    ],
)
def test_values(text: str, value: Any) -> None:
    trait = parse_computed_text("t", text)
    assert trait.compute(HISTORY, NOW) == value
    assert parse_computed("t", trait.to_json()) == trait
    assert parse_computed_text("t", trait.to_text()) == trait


@pytest.mark.parametrize(
    ("name", "data", "path"),
    [
        ("Lifetime", {"event": "E", "agg": "count"}, "/name"),
        ("t", {"event": "E", "agg": "median", "property": "x"}, "/agg"),
        ("t", {"event": "E", "agg": "sum"}, "/property"),
        ("t", {"event": "E", "agg": "count", "property": "x"}, "/property"),
        ("t", {"event": "E", "within_days": 0}, "/within_days"),
        ("t", {"event": "E", "colour": 1}, "/colour"),
        ("t", {"agg": "count"}, "/event"),
        ("t", {"event": "E", "where": [{"property": "x", "op": "eq"}]}, "/where/0/value"),
    ],
)
def test_bad_definitions_name_the_part(name: str, data: Any, path: str) -> None:
    with pytest.raises(RuleError) as found:
        parse_computed(name, data)
    assert found.value.path == path


def stored(engine: Engine, pid: int, name: str) -> Any:
    with engine.connect() as conn:
        return conn.scalar(
            select(traits.c.value).where(traits.c.profile_id == pid, traits.c.name == name)
        )


def test_kept_up_to_date_and_usable_in_rules(engine: Engine) -> None:
    now = utcnow()
    send(
        engine,
        order("ann", now - timedelta(days=40), 60),
        order("bob", now - timedelta(days=2), 30),
    )
    ann, bob = profile(engine, "ann"), profile(engine, "bob")
    with engine.begin() as conn:
        define_computed(conn, "lifetime_spend", 'sum("Order Completed".total)', actor="test")
        define_computed(
            conn, "orders_30d", {"event": "Order Completed", "within_days": 30}, actor="test"
        )
        assert compute_everyone(conn) == 2
    assert (stored(engine, ann, "lifetime_spend"), stored(engine, bob, "lifetime_spend")) == (
        60,
        30,
    )
    assert (stored(engine, ann, "orders_30d"), stored(engine, bob, "orders_30d")) == (0, 1)

    seg = make(engine, "spent-50", "trait.lifetime_spend > 50")  # evaluated in SQL
    assert members(engine, seg) == {ann}
    send(engine, order("bob", now - timedelta(days=1), 25.5))  # real time: 55.5
    assert stored(engine, bob, "lifetime_spend") == 55.5
    assert members(engine, seg) == {ann, bob}

    # A windowed trait changes when the order leaves the window: the recheck does it.
    with engine.begin() as conn:
        run_due_rechecks(conn, now=now + timedelta(days=29))
    assert stored(engine, bob, "orders_30d") == 1
    with engine.begin() as conn:
        run_due_rechecks(conn, now=now + timedelta(days=30))
    assert stored(engine, bob, "orders_30d") == 0

    with engine.begin() as conn, pytest.raises(SegmentError) as used:
        delete_computed(conn, "lifetime_spend", actor="test")
    assert used.value.status == 409 and "spent-50" in used.value.message
    with engine.begin() as conn:
        delete_computed(conn, "orders_30d", actor="test")
    assert stored(engine, bob, "orders_30d") is None
