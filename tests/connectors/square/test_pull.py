"""Backfills of the customers stream against the fake: whole, resumed, incremental."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from guestlist.connectors import connections
from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors.backfill import backfill
from guestlist.connectors.square import client as api
from guestlist.pipeline import process_all
from tests.connectors.helpers import stream_row
from tests.connectors.square.conftest import Served
from tests.connectors.square.helpers import (
    count_events,
    events_of,
    live_profiles,
    profile_of,
    settings,
    traits_of,
)
from tests.fakes.square import EPOCH, iso, make_order

N = 45
LIMIT = 10  # five pages


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "PAGE_LIMIT", LIMIT)


def connect(engine: Engine, square: Served) -> int:
    info, _ = connections.add(engine, "square", "Corner Store", settings(base_url=square.url))
    return info.id


def searches(square: Served) -> list[dict[str, Any]]:
    return [r["json"] for r in square.fake.calls("POST", "/v2/customers/search")]


def test_full_backfill_then_an_incremental_run(
    engine: Engine, square: Served, client: VendorClient
) -> None:
    seeded = square.fake.seed(N)
    cid = connect(engine, square)
    (done,) = backfill(engine, cid, client=client, streams=["customers"])
    assert (done.pages, done.records, done.total) == (5, N, N)
    process_all(engine)
    assert live_profiles(engine) == N
    assert count_events(engine, type_="identify") == N
    unsubscribed = [c for c in seeded if c["preferences"]["email_unsubscribed"]]
    assert count_events(engine, name="Consent Updated") == len(unsubscribed)  # C-5
    assert count_events(engine, name="Age Verified") == 0  # birthdays are traits
    pid = profile_of(engine, "external", f"square:customer:{seeded[5]['id']}")
    assert pid is not None and traits_of(engine, pid)["email"] == "customer5@example.com"
    first = searches(square)[0]
    assert first == {"limit": LIMIT, "count": True,
                     "query": {"sort": {"field": "CREATED_AT", "order": "ASC"}}}
    # The next run starts OVERLAP before the newest change seen (search lags writes).
    newest = EPOCH + timedelta(minutes=N - 1)
    assert orjson.loads(stream_row(engine, cid, "customers").checkpoint) == {
        "since": iso(newest - api.OVERLAP)
    }

    # The next run asks only for what changed since the watermark.
    unsubscribed_before = sum(c["preferences"]["email_unsubscribed"] for c in seeded)
    square.fake.touch(seeded[0]["id"], given_name="Renamed")
    square.fake.touch(seeded[1]["id"], preferences={"email_unsubscribed": True})
    before = len(searches(square))

    (done,) = backfill(engine, cid, client=client, streams=["customers"])
    asked = searches(square)[before:]
    since = iso(EPOCH + timedelta(minutes=N - 1) - api.OVERLAP)
    assert asked[0]["query"]["filter"] == {"updated_at": {"start_at": since}}
    # The two changed, and the eleven in the overlap again (applied once: same versions).
    assert done.records == 2 + 11
    process_all(engine)
    assert live_profiles(engine) == N
    assert count_events(engine, type_="identify") == N + 2
    pid = profile_of(engine, "external", f"square:customer:{seeded[0]['id']}")
    assert pid is not None and traits_of(engine, pid)["first_name"] == "Renamed"
    assert count_events(engine, name="Consent Updated") == 1 + unsubscribed_before


def test_killed_midway_then_resumed_has_no_gap_and_no_duplicate(
    engine: Engine, square: Served, client: VendorClient
) -> None:
    square.fake.seed(N)
    cid = connect(engine, square)
    # Page 3 keeps failing beyond the client's retries: the run stops there.
    fault = square.fake.fail("POST", "/v2/customers/search", 500, after=2, times=100)
    with pytest.raises(VendorError):
        backfill(engine, cid, client=client, streams=["customers"])
    row = stream_row(engine, cid, "customers")
    assert (row.status, row.pages, row.records) == ("failed", 2, 2 * LIMIT)
    saved = orjson.loads(row.checkpoint)
    assert saved["cursor"] and saved["seen_max"]
    process_all(engine)
    assert live_profiles(engine) == 2 * LIMIT

    fault.times = 0  # the outage ends
    (done,) = backfill(engine, cid, client=client, streams=["customers"])
    assert done.records == N and done.status == "done"
    assert searches(square)[-3]["cursor"] == saved["cursor"]  # resumed where it stopped
    process_all(engine)
    assert live_profiles(engine) == N
    assert count_events(engine, type_="identify") == N


def test_a_record_seen_twice_in_one_run_is_one_event(
    engine: Engine, square: Served, client: VendorClient
) -> None:
    seeded = square.fake.seed(N)
    # Customer 3 changed just before the run and is not in the search index yet; it
    # shows up after the first page, pushing the rest one place down: page 2 starts
    # with the record page 1 ended with.
    square.fake.touch(seeded[3]["id"], nickname="Tres")
    square.fake.hidden_from_search.add(seeded[3]["id"])

    def reveal(answered: int) -> None:
        if answered == 1:
            square.fake.hidden_from_search.clear()

    square.fake.after_search = reveal
    cid = connect(engine, square)
    (done,) = backfill(engine, cid, client=client, streams=["customers"])
    assert done.records == N - 1  # the repeat is dropped; customer 3 comes next run
    process_all(engine)
    assert count_events(engine, type_="identify") == N - 1

    # Its change is newer than the watermark: the next run brings it.
    backfill(engine, cid, client=client, streams=["customers"])
    process_all(engine)
    assert live_profiles(engine) == N
    assert count_events(engine, type_="identify") == N


def test_orders_after_customers(engine: Engine, square: Served, client: VendorClient) -> None:
    seeded = square.fake.seed(12)
    first, second = square.fake.seed_locations(2)
    completed = 0
    for i in range(15):
        state = "OPEN" if i % 5 == 4 else "COMPLETED"
        customer = None if i % 7 == 6 else seeded[i % 12]["id"]  # walk-in sales
        square.fake.add_order(
            make_order(i, EPOCH + timedelta(hours=i), (first, second)[i % 2], customer, state)
        )
        completed += state == "COMPLETED" and customer is not None
    cid = connect(engine, square)
    ok, message = connections.check_connection(engine, cid)  # `connections test`
    assert ok, message
    _, orders = backfill(engine, cid, client=client)
    assert orders.records == 15 - 3  # SearchOrders asked for COMPLETED only
    process_all(engine)
    assert live_profiles(engine) == 12  # orders land on the customers' profiles
    assert count_events(engine, name="Order Completed") == completed
    asked = [r["json"] for r in square.fake.calls("POST", "/v2/orders/search")]
    assert asked[0]["location_ids"] == [first, second]
    assert asked[0]["query"]["sort"] == {"sort_field": "UPDATED_AT", "sort_order": "ASC"}
    pid = profile_of(engine, "external", f"square:customer:{seeded[1]['id']}")
    assert pid is not None
    (order,) = events_of(engine, pid, "Order Completed")  # order 13 was a walk-in sale
    assert [p["name"] for p in order.properties["products"]] == ["Rioja Reserva", "Tonic Water"]
    assert order.properties["in_store"] is True and order.properties["total"] == 47.98
