"""Pulls against the fake Admin API over real HTTP: backfill, resume, limits, versions."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, select

from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import TokenBucket
from guestlist.connectors.backfill import backfill
from guestlist.connectors.connections import add, check_connection
from guestlist.connectors.shopify import client as shopify_client
from guestlist.connectors.shopify.bulk import POLL_SECONDS as POLL_WAIT
from guestlist.connectors.shopify.client import call_limit_budget, make_client
from guestlist.connectors.shopify.settings import ShopifySettings
from guestlist.pipeline import process_all
from guestlist.store.tables import consent_records
from tests.connectors.shopify.helpers import (
    count_events,
    inbox_rows,
    live_profiles,
    profile_of,
    settings,
    traits_of,
)
from tests.fakes import serve
from tests.fakes.shopify import TOKEN, FakeShopify


class Clock:
    """A clock that moves only when something sleeps: waits cost no test time."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.waits: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.t += seconds


class Current:
    """One server for the module, answering with each test's own fake."""

    def __init__(self) -> None:
        self.app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Current, str]]:
    current = Current()
    with serve(current) as base:
        yield current, base


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, server: tuple[Current, str]) -> FakeShopify:
    # Pages of 25 instead of 250: the same paging with a tenth of the records.
    monkeypatch.setattr(shopify_client, "PAGE_LIMIT", 25)
    made = FakeShopify(customers=52, orders=76, unpaid_every=11, refunded_every=17)
    server[0].app = made.app()
    return made


@pytest.fixture
def url(fake: FakeShopify, server: tuple[Current, str]) -> str:
    return server[1]


def connect(engine: Engine, url: str, **overrides: Any) -> tuple[int, ShopifySettings]:
    info, _ = add(engine, "shopify", "Bottle Shop", settings(base_url=url, **overrides))
    return info.id, ShopifySettings.model_validate(settings(base_url=url, **overrides))


def client(s: ShopifySettings, clock: Clock, attempts: int = 6) -> VendorClient:
    bucket = TokenBucket(40, 2, read_budget=call_limit_budget, clock=clock.now, sleep=clock.sleep)
    return make_client(s, limiter=bucket, sleep=clock.sleep, attempts=attempts)


def completed(fake: FakeShopify) -> int:
    return sum(
        fake.financial_status(j) in ("paid", "partially_refunded") for j in range(fake.orders)
    )


def granted_or_withdrawn(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(consent_records)) or 0)


def expected_consents(fake: FakeShopify) -> int:
    n = 0
    for i in range(fake.customers):
        c = fake.customer(i)
        n += c["email_marketing_consent"]["state"] != "not_subscribed"
        n += c["sms_marketing_consent"]["state"] != "not_subscribed" and bool(c["phone"])
    return n


def test_backfill_gives_every_customer_and_paid_order(
    engine: Engine, fake: FakeShopify, url: str
) -> None:
    cid, _ = connect(engine, url)
    done = backfill(engine, cid)
    assert [(s.stream, s.pages, s.records, s.status) for s in done] == [
        ("customers", 3, 52, "done"),
        ("orders", 4, 76, "done"),
    ]
    first_customers, first_orders = fake.calls[0][1], fake.calls[3][1]
    assert first_customers == {"limit": "25", "fields": first_customers["fields"]}
    assert first_orders["status"] == "any" and first_orders["limit"] == "25"
    for _, params in fake.calls:  # a page_info request carries only limit and fields
        if "page_info" in params:
            assert set(params) == {"page_info", "limit", "fields"}
    process_all(engine)
    assert live_profiles(engine) == 52
    assert count_events(engine, "Order Completed") == completed(fake) < 76
    assert granted_or_withdrawn(engine) == expected_consents(fake)  # C-2, C-6
    pid = profile_of(engine, "email", "guest0@mail.example.com")
    assert pid is not None
    assert traits_of(engine, pid)["tags"] == ["vip", "newsletter"]
    pos = profile_of(engine, "external", f"shopify:customer:{fake.order(0)['customer']['id']}")
    assert pos is not None

    # The next run asks only for what changed since this one began.
    later = datetime.now(UTC) + timedelta(minutes=1)
    fake.touch("customers", 7, later)
    fake.touch("orders", 3, later)
    fake.calls.clear()
    done = backfill(engine, cid)
    assert [(d.stream, d.run, d.records) for d in done] == [("customers", 2, 1), ("orders", 2, 1)]
    for _, params in fake.calls:  # each stream's own run start, by Shopify's clock, less 5 min
        since = datetime.now(UTC) - datetime.fromisoformat(params["updated_at_min"])
        assert timedelta(minutes=5) <= since < timedelta(minutes=6)


def test_killed_backfill_resumes_without_gaps_or_duplicates(
    engine: Engine, fake: FakeShopify, url: str
) -> None:
    cid, s = connect(engine, url)
    stop = threading.Event()

    def progress(state: Any) -> None:
        if state.stream == "customers" and state.pages == 1:
            stop.set()

    fake.fail("customers", 0, status=429, times=1)
    clock = Clock()
    done = backfill(engine, cid, stop=stop, progress=progress, client=client(s, clock))
    assert [(d.stream, d.pages) for d in done] == [("customers", 1)]
    assert clock.waits == [2.0]  # Retry-After: 2.0, once
    fake.fail("orders", 2, status=503, times=100)  # down beyond the retries
    with pytest.raises(VendorError, match="503"):
        backfill(engine, cid, client=client(s, clock, attempts=3))
    assert len(clock.waits) >= 2  # backed off between attempts
    fake.faults.clear()
    calls_before = len(fake.calls)
    done = backfill(engine, cid, client=client(s, clock))
    # Customers (done) only for what changed since; orders resumed at page 2.
    assert [(d.stream, d.records) for d in done] == [("customers", 0), ("orders", 76)]
    customers, orders = fake.calls[calls_before], fake.calls[calls_before + 1]
    assert customers[0] == "customers" and "updated_at_min" in customers[1]
    assert orders[0] == "orders" and "page_info" in orders[1]
    assert len(inbox_rows(engine)) == 3 + 4
    process_all(engine)
    assert live_profiles(engine) == 52
    assert count_events(engine, "Order Completed") == completed(fake)


def test_client_never_overfills_the_bucket(url: str, fake: FakeShopify) -> None:
    # The fake leaks by the same fake clock the client sleeps on: 120 calls, no waiting.
    clock = Clock()
    fake.clock = clock.now
    fake.__post_init__()
    fake.level = 30  # other apps on the store used most of it
    s = ShopifySettings.model_validate(settings(base_url=url))
    with client(s, clock) as http:
        for _ in range(120):
            http.get("/admin/api/2025-10/shop.json")
    assert fake.throttled == 0
    assert fake.max_level <= 40
    assert clock.t - 1000.0 >= (120 + 30 - 40) / 2 - 1  # it waited for the leak


def test_check_names_the_version_and_refuses_a_wrong_token(
    engine: Engine, fake: FakeShopify, url: str
) -> None:
    cid, _ = connect(engine, url, api_version="2023-01")
    ok, message = check_connection(engine, cid)
    assert ok, message
    assert "2023-01 is retired, Shopify answered 2025-01" in message
    info, _ = add(engine, "shopify", "Wrong", settings(base_url=url, access_token="shpat_wrong"))
    requests = fake.requests
    ok, message = check_connection(engine, info.id)
    assert not ok and "401" in message
    assert "shpat_wrong" not in message
    assert fake.requests == requests + 1  # a 401 is not retried


def test_retired_version_pulls(fake: FakeShopify, url: str) -> None:
    s = ShopifySettings.model_validate(settings(base_url=url, api_version="2023-01"))
    with client(s, Clock()) as http:
        pages = list(shopify_client.pull_stream(http, s, "customers", None))
    assert sum(len(p.records) for p in pages) == 52
    assert fake.calls[0][0] == "customers"


def test_fake_enforces_shopify_paging_rules(url: str) -> None:
    headers = {"X-Shopify-Access-Token": TOKEN}
    with httpx.Client(base_url=url, headers=headers) as http:
        assert http.get("/admin/api/2025-10/customers.json?limit=251").status_code == 400
        first = http.get("/admin/api/2025-10/customers.json?limit=20")
        assert first.headers["X-Shopify-Shop-Api-Call-Limit"] == "2/40"
        following = first.links["next"]["url"]
        assert http.get(following).status_code == 200
        assert http.get(following + "&status=any").status_code == 400
        assert len(orjson.loads(http.get(following).content)["customers"]) == 20
        assert http.get("/admin/api/2025-10/customers.json?page_info=bogus").status_code == 400
        retired = http.get("/admin/api/2023-01/shop.json")
        assert retired.headers["X-Shopify-API-Version"] == "2025-01"


def test_bulk_backfill_then_rest_increments(engine: Engine, fake: FakeShopify, url: str) -> None:
    cid, s = connect(engine, url, bulk_backfill=True)
    stop = threading.Event()

    def progress(state: Any) -> None:
        if state.stream == "orders" and state.pages == 1:
            stop.set()

    clock = Clock()
    backfill(engine, cid, stop=stop, progress=progress, client=client(s, clock))
    assert POLL_WAIT in clock.waits  # polled while RUNNING
    done = backfill(engine, cid, client=client(s, clock))  # resumes inside the file
    assert [(d.stream, d.records) for d in done] == [("customers", 0), ("orders", 76)]
    assert [r for r, _ in fake.calls].count("graphql") == 6  # run, RUNNING, COMPLETED; twice
    assert len(fake.bulk_ops) == 2
    process_all(engine)
    assert live_profiles(engine) == 52
    assert count_events(engine, "Order Completed") == completed(fake)
    assert granted_or_withdrawn(engine) == expected_consents(fake)
    fake.calls.clear()
    fake.touch("customers", 2, datetime.now(UTC) + timedelta(minutes=1))
    done = backfill(engine, cid, client=client(s, clock))
    assert [(d.stream, d.records) for d in done] == [("customers", 1), ("orders", 0)]
    assert all(r != "graphql" and "updated_at_min" in p for r, p in fake.calls)
    # The same customer version by REST (-05:00) and by bulk (Z) is one event.
    process_all(engine)
    assert count_events(engine, type_="identify") == 53


def test_a_plus_stores_bucket_leaks_ten_times_faster() -> None:
    standard = call_limit_budget(
        httpx.Response(200, headers={"X-Shopify-Shop-Api-Call-Limit": "40/40"})
    )
    plus = call_limit_budget(
        httpx.Response(200, headers={"X-Shopify-Shop-Api-Call-Limit": "320/400"})
    )
    assert standard is not None and plus is not None
    assert (standard.capacity, standard.rate, standard.resets_in) == (40, 2, 0.5)
    assert (plus.capacity, plus.rate, plus.remaining) == (400, 20, 80)
    bucket = TokenBucket(40, 2, read_budget=call_limit_budget)
    bucket.observe(httpx.Response(200, headers={"X-Shopify-Shop-Api-Call-Limit": "1/400"}))
    assert (bucket.capacity, bucket.rate) == (400, 20)


def test_the_cli_fetches_in_its_own_process_and_builds_profiles(
    engine: Engine, fake: FakeShopify, url: str
) -> None:
    from typer.testing import CliRunner

    from guestlist.cli import app as cli

    connect(engine, url)
    result = CliRunner().invoke(cli, ["connections", "backfill", "Bottle Shop"])
    assert result.exit_code == 0, result.output
    assert live_profiles(engine) == 52
    assert count_events(engine, "Order Completed") == completed(fake)
    # A second run is incremental: nothing new, nothing twice.
    again = CliRunner().invoke(cli, ["connections", "backfill", "Bottle Shop"])
    assert again.exit_code == 0, again.output
    assert count_events(engine, "Order Completed") == completed(fake)


def test_the_cli_says_a_failed_fetch_can_be_resumed(
    engine: Engine, fake: FakeShopify, url: str
) -> None:
    from typer.testing import CliRunner

    from guestlist.cli import app as cli

    connect(engine, url, access_token="shpat_wrong")
    result = CliRunner().invoke(cli, ["connections", "backfill", "Bottle Shop"])
    assert result.exit_code == 1
    assert "401" in result.output and "run the same command to resume" in result.output
