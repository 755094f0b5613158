"""Traits: latest by event time, one spelling per name (both databases)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from guestlist.canonical import CanonicalEvent
from guestlist.pipeline import process_events
from guestlist.profiles.trait_names import canonical_trait_name
from guestlist.store.tables import profiles, traits

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def identify(message_id: str, minutes: int, **trait_values: object) -> CanonicalEvent:
    return CanonicalEvent(
        type="identify",
        message_id=message_id,
        timestamp=T0 + timedelta(minutes=minutes),
        received_at=datetime.now(UTC),
        source_id=1,
        user_id="u-1",
        traits=dict(trait_values),
    )


def stored(engine: Engine) -> dict[str, object]:
    with engine.connect() as conn:
        return {r.name: r.value for r in conn.execute(select(traits))}


def test_later_arriving_older_event_never_overwrites(engine: Engine) -> None:
    with engine.begin() as conn:
        process_events(conn, [identify("new", 10, city="Austin")])
    with engine.begin() as conn:
        process_events(conn, [identify("old", 5, city="Denver", tier="gold")])
    assert stored(engine) == {"city": "Austin", "tier": "gold"}


def test_older_event_in_the_same_batch_loses_too(engine: Engine) -> None:
    with engine.begin() as conn:
        process_events(conn, [identify("b", 10, city="Austin"), identify("a", 5, city="Denver")])
    assert stored(engine)["city"] == "Austin"


def test_newer_event_overwrites_and_records_time(engine: Engine) -> None:
    with engine.begin() as conn:
        process_events(conn, [identify("a", 5, city="Denver")])
    with engine.begin() as conn:
        process_events(conn, [identify("b", 10, city="Austin")])
    with engine.connect() as conn:
        row = conn.execute(select(traits).where(traits.c.name == "city")).one()
    assert row.value == "Austin"
    assert row.event_time == T0 + timedelta(minutes=10)


def test_spellings_of_one_name_are_one_trait(engine: Engine) -> None:
    with engine.begin() as conn:
        process_events(
            conn,
            [
                identify("a", 1, firstName="Ann"),
                identify("b", 2, first_name="Anna"),
                identify("c", 3, **{"First Name": "Annie"}),
            ],
        )
    assert stored(engine) == {"first_name": "Annie"}


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("firstName", "first_name"),
        ("first_name", "first_name"),
        ("FirstName", "first_name"),
        ("lastName", "last_name"),
        ("createdAt", "created_at"),
        ("postal-code", "postal_code"),
        ("LTV", "ltv"),
        ("favoriteCategory", "favorite_category"),
    ],
)
def test_canonical_trait_names(given: str, canonical: str) -> None:
    assert canonical_trait_name(given) == canonical


def test_values_of_every_json_type_read_back_as_written(engine: Engine) -> None:
    # SQLite gives a JSON column NUMERIC affinity: a bare number is stored as a number.
    values = {"visits": 18900, "score": 0.5, "vip": True, "nickname": "42",
              "tags": ["a", "b"], "address": {"city": "Austin"}, "fax": None}
    with engine.begin() as conn:
        process_events(conn, [identify("a", 1, **values)])
    assert stored(engine) == values


def test_first_and_last_seen_widen_to_cover_every_event_in_any_order(engine: Engine) -> None:
    def seen() -> tuple[datetime, datetime]:
        with engine.connect() as conn:
            row = conn.execute(select(profiles.c.first_seen_at, profiles.c.last_seen_at)).one()
        return row.first_seen_at, row.last_seen_at

    with engine.begin() as conn:
        process_events(conn, [identify("a", 10)])
    assert seen() == (T0 + timedelta(minutes=10), T0 + timedelta(minutes=10))
    with engine.begin() as conn:  # an older and a newer event of a stored profile
        process_events(conn, [identify("b", 60), identify("c", -30)])
    assert seen() == (T0 - timedelta(minutes=30), T0 + timedelta(minutes=60))
    with engine.begin() as conn:  # one in between moves neither
        process_events(conn, [identify("d", 20)])
    assert seen() == (T0 - timedelta(minutes=30), T0 + timedelta(minutes=60))
