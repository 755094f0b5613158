"""load_profile_views: the evaluator's input, read from the store (both databases)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine

from guestlist.segments import profile_view
from guestlist.segments.evaluate import ProfileEvent, ProfileView
from guestlist.segments.profile_view import load_profile_views
from tests.segments.strategies_db import (
    SQL_NULL,
    StoredAge,
    StoredConsent,
    StoredEvent,
    StoredProfile,
    insert_profiles,
)

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)


def views(
    engine: Engine,
    *stored: StoredProfile,
    ids: list[int] | None = None,
    event_names: list[str] | None = None,
) -> dict[int, ProfileView]:
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            insert_profiles(conn, stored, NOW)
            wanted = ids if ids is not None else [p.id for p in stored]
            return load_profile_views(conn, wanted, now=NOW, event_names=event_names)
        finally:
            transaction.rollback()


def test_traits_identifiers_and_track_events(engine: Engine) -> None:
    earlier, later = NOW - timedelta(days=2), NOW - timedelta(days=1)
    stored = StoredProfile(
        1,
        traits={"city": "Austin", "spend": 12.5, "tags": ["gift"], "gone": None, "blank": SQL_NULL},
        identifiers=frozenset({("email", "a@example.com"), ("email", "b@example.com")}),
        events=(
            StoredEvent("Order Completed", later, {"total": 10, "shipping": {"country": "US"}}),
            StoredEvent("Order Completed", earlier, None),
            StoredEvent("Home", earlier, {"path": "/"}, type="page"),
            StoredEvent(None, earlier, None, type="identify"),
        ),
    )
    view = views(engine, stored)[1]
    assert view.traits == {
        "city": "Austin",
        "spend": 12.5,
        "tags": ["gift"],
        "gone": None,
        "blank": None,
    }
    assert view.identifiers == {"email": {"a@example.com", "b@example.com"}}
    assert list(view.events) == [
        ProfileEvent("Order Completed", earlier, None),
        ProfileEvent("Order Completed", later, {"total": 10, "shipping": {"country": "US"}}),
    ]


def test_event_names_limit_the_events_loaded(engine: Engine) -> None:
    stored = StoredProfile(
        1,
        events=(
            StoredEvent("Order Completed", NOW, {}),
            StoredEvent("Product Viewed", NOW, {}),
        ),
    )
    view = views(engine, stored, event_names=["Product Viewed"])[1]
    assert [e[0] for e in view.events] == ["Product Viewed"]


def test_consent_is_derived_as_the_consent_package_does(engine: Engine) -> None:
    stored = StoredProfile(
        1,
        consents=(
            StoredConsent("sms", identifier_hash="h1", status="withdrawn"),
            StoredConsent("sms", identifier_hash="h2", status="granted"),
            StoredConsent("email", status="granted", expires_at=NOW),
            StoredConsent("push", status="granted", expires_at=NOW + timedelta(microseconds=1)),
            StoredConsent("phone", status="pending"),
            StoredConsent("postal", identifier_hash="h1", status="denied"),
            StoredConsent("postal", identifier_hash="h2", status="withdrawn"),
        ),
    )
    assert views(engine, stored)[1].consent == {
        ("sms", "marketing"): "granted",
        ("email", "marketing"): "expired",
        ("push", "marketing"): "granted",
        ("phone", "marketing"): "pending",
        ("postal", "marketing"): "withdrawn",
    }


def test_age_facts_and_of_age(engine: Engine) -> None:
    stored = (
        StoredProfile(1, age=StoredAge(date(2000, 1, 1), "dob_provided", "US-TX")),
        StoredProfile(2, age=StoredAge(date(2000, 1, 1), "dob_provided", "us-tx")),
        StoredProfile(3, age=StoredAge(date(2000, 1, 1), "DOB_PROVIDED", "US")),
        StoredProfile(4, age=StoredAge(date(2010, 1, 1), "in_person_id", "US")),
        StoredProfile(5),
    )
    loaded = views(engine, *stored)
    first = loaded[1]
    assert (first.dob, first.verification_level, first.jurisdiction) == (
        date(2000, 1, 1),
        "dob_provided",
        "US-TX",
    )
    assert first.of_age("alcohol", None)
    assert not first.of_age("vape", None)  # needs a database check
    assert first.of_age("vape", "self_declared")
    assert not first.of_age("cannabis", None)  # prohibited in the US
    # only what age/records.py writes counts: canonical codes and level names
    assert not loaded[2].of_age("alcohol", None)
    assert not loaded[3].of_age("alcohol", None)
    assert not loaded[4].of_age("alcohol", None)  # 15
    assert not loaded[5].of_age("alcohol", "self_declared")
    assert loaded[5].dob is None and loaded[5].jurisdiction is None


def test_only_live_profiles_get_a_view(engine: Engine) -> None:
    stored = (
        StoredProfile(1),
        StoredProfile(2, state="merged"),
        StoredProfile(3, state="erased"),
    )
    assert set(views(engine, *stored, ids=[1, 2, 3, 99])) == {1}


def test_many_ids_are_read_in_chunks(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(profile_view, "CHUNK", 2)
    stored = [StoredProfile(i, traits={"n": i}) for i in range(1, 6)]
    loaded = views(engine, *stored)
    assert {pid: view.traits["n"] for pid, view in loaded.items()} == {i: i for i in range(1, 6)}


def test_naive_now_is_refused(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(ValueError, match="timezone-aware"):
        load_profile_views(conn, [1], now=datetime(2025, 1, 1))
