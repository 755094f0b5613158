"""Backfills against the fake shop: every record once, resumable after a failure, and
the next run asks only for orders changed since the last one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from guestlist.connectors._http.client import VendorError
from guestlist.connectors._http.ratelimit import forget_limiter
from guestlist.connectors.backfill import backfill
from guestlist.connectors.connections import add, load
from guestlist.connectors.woocommerce.client import make_client
from guestlist.pipeline import process_all
from guestlist.store.tables import age_records, connection_streams, inbox
from tests.connectors.woocommerce.helpers import count_events, live_profiles
from tests.fakes import serve
from tests.fakes.woocommerce import FakeShop, Fault

CUSTOMERS, ORDERS = 23, 30


@pytest.fixture
def shop() -> FakeShop:
    return FakeShop.generated(CUSTOMERS, ORDERS)


@pytest.fixture
def shop_url(shop: FakeShop) -> Iterator[str]:
    with serve(shop.app()) as url:
        yield url


def connect(engine: Engine, url: str) -> int:
    info, _secret = add(engine, "woocommerce", "Bottle Shop", {
        "site_url": url, "consumer_key": "ck_test", "consumer_secret": "cs_test",
        "per_page": 10, "requests_per_second": 100,
    })
    forget_limiter("woocommerce", info.id)
    return info.id


def expected_profiles(shop: FakeShop) -> int:
    guests = {o["billing"]["email"] for o in shop.orders if o["customer_id"] == 0}
    return len(shop.customers) + len(guests)


def stream_rows(engine: Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {r.stream: r for r in conn.execute(select(connection_streams))}


def test_a_backfill_brings_every_record_once_then_runs_incrementally(
    engine: Engine, shop: FakeShop, shop_url: str
) -> None:
    cid = connect(engine, shop_url)
    done = backfill(engine, cid)
    assert [(s.stream, s.pages, s.records) for s in done] == [
        ("customers", 3, CUSTOMERS), ("orders", 3, ORDERS)]
    process_all(engine)
    assert live_profiles(engine) == expected_profiles(shop)
    assert count_events(engine, "Order Completed") == len(shop.paid_orders())
    with engine.connect() as conn:
        ages = conn.scalar(select(func.count()).select_from(age_records))
    assert ages == len([c for c in shop.customers if c["meta_data"]])  # A-3 dob_provided
    assert {s.auth for s in shop.seen} == {"oauth1"}  # the fake is plain http

    # Two orders change at the shop; the next run asks for orders modified since the
    # last run began (less the margin) and gets only those.
    watermark = stream_rows(engine)["orders"].checkpoint
    assert watermark is not None and "modified_after" in watermark
    now = datetime.now(UTC)
    shop.orders[2]["status"] = "completed"  # was pending
    shop.touch_order(2, now)
    shop.touch_order(3, now)  # a guest's order: its billing identify is a new version
    shop.seen.clear()
    again = backfill(engine, cid)
    assert [(s.stream, s.records) for s in again] == [("customers", CUSTOMERS), ("orders", 2)]
    [orders_call] = [s for s in shop.seen if s.stream == "orders"]
    assert orders_call.params["dates_are_gmt"] == "true"
    assert orders_call.params["modified_after"] < now.strftime("%Y-%m-%dT%H:%M:%S")
    process_all(engine)
    # Unchanged customers make no new events; the newly paid order is one purchase more.
    assert count_events(engine, "Order Completed") == len(shop.paid_orders())
    assert count_events(engine, type_="identify") == CUSTOMERS + sum(
        1 for o in shop.orders if o["customer_id"] == 0) + 1


def test_a_failed_backfill_resumes_without_gap_or_duplicate(
    engine: Engine, shop: FakeShop, shop_url: str
) -> None:
    cid = connect(engine, shop_url)
    fault = Fault("orders", 2, status=500, times=-1)  # outlasts the retries
    shop.faults.append(fault)
    with engine.connect() as conn:
        _connector, settings, _info = load(conn, cid)
    waits: list[float] = []
    client = make_client(settings, sleep=waits.append, attempts=2)
    with pytest.raises(VendorError):
        backfill(engine, cid, client=client)
    rows = stream_rows(engine)
    assert (rows["customers"].status, rows["orders"].status) == ("done", "failed")
    assert rows["orders"].pages == 1
    fault.times = 0
    shop.seen.clear()
    backfill(engine, cid, streams=["orders"], client=client)
    client.close()
    assert [s.params["page"] for s in shop.seen] == ["2", "3"]  # resumed after page 1
    with engine.connect() as conn:
        stored = conn.scalar(select(func.count()).select_from(inbox))
    assert stored == 3 + 3
    process_all(engine)
    assert count_events(engine, "Order Completed") == len(shop.paid_orders())
    assert live_profiles(engine) == expected_profiles(shop)
