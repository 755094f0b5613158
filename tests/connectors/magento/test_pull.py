"""Backfills from the fake store into the database, then through the pipeline."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, select

from guestlist.connectors._http.client import VendorError
from guestlist.connectors._http.paginate import search_criteria_pages
from guestlist.connectors.backfill import StreamProgress, backfill
from guestlist.connectors.magento.client import build_client, pull_stream
from guestlist.connectors.magento.settings import MagentoSettings
from guestlist.pipeline import process_all
from guestlist.store.tables import age_records, connection_streams, consent_records, events
from tests.connectors.magento.conftest import (
    Served,
    count,
    event_names,
    live_profiles,
    pulled_records,
)
from tests.fakes.magento import MagentoFake

UPDATED = "searchCriteria[filterGroups][0][filters][0]"


def _ids(records: list[dict[str, object]], key: str = "id") -> list[int]:
    return [int(str(r[key])) for r in records]


def test_full_backfill_then_pipeline(engine: Engine, magento: Callable[..., Served]) -> None:
    served = magento(customers=23, orders=30)
    ref = served.connect(engine)  # page_size 10
    with served.client() as client:
        done = backfill(engine, ref, client=client)
    assert [(s.stream, s.records, s.total) for s in done] == [
        ("customers", 23, 23),
        ("orders", 30, 30),
    ]
    # ceil(23/10) and ceil(30/10) pages: stopped on total_count, no extra request.
    assert len(served.fake.api_requests("customers")) == 3
    assert len(served.fake.api_requests("orders")) == 3
    assert sorted(_ids(pulled_records(engine, "customers"))) == list(range(1, 24))

    process_all(engine)
    # 23 customers, and the 6 guests (every fifth order) with their own addresses.
    assert live_profiles(engine) == 29
    names = event_names(engine)
    assert names["identify"] == 23
    assert names["Order Completed"] == 12  # processing + complete
    assert names["Order Refunded"] == 6  # closed
    assert names["Order Cancelled"] == 6  # canceled; pending_payment → nothing
    assert count(engine, age_records) == 11  # the customers with a dob  # A-3
    assert count(engine, age_records, age_records.c.level != "dob_provided") == 0
    # is_subscribed: true → granted (5), false → withdrawn (18)  # C-2, C-4
    assert count(engine, consent_records, consent_records.c.status == "granted") == 5
    assert count(engine, consent_records, consent_records.c.status == "withdrawn") == 18
    assert count(engine, events, events.c.issues.is_not(None)) == 0


def test_exact_multiple_of_the_page_size_stops_without_asking_again(
    magento: Callable[..., Served],
) -> None:
    served = magento(customers=200)
    with served.client() as client:
        pages = list(pull_stream(client, "customers", None))  # 100 a page
    assert [len(p.records) for p in pages] == [100, 100]
    assert [p.checkpoint is None for p in pages] == [False, True]
    assert len(served.fake.api_requests("customers")) == 2


def test_stopped_or_killed_backfill_resumes_without_gaps_or_duplicates(
    engine: Engine, magento: Callable[..., Served]
) -> None:
    served = magento(customers=45)
    ref = served.connect(engine)
    stop = threading.Event()

    def after_first(state: StreamProgress) -> None:
        if state.pages == 1:
            stop.set()

    with served.client() as client:  # stopped between two pages
        backfill(engine, ref, streams=["customers"], client=client, stop=stop,
                 progress=after_first)
    assert len(pulled_records(engine, "customers")) == 10
    # Page 3 fails beyond the retries: the resumed run's second request (the stopped
    # run may have fetched a few pages ahead that it did not store).
    asked = sum(1 for name, _ in served.fake.requests if name == "customers")
    served.fake.fail[("customers", asked + 2)] = (500, 10)
    with served.client(attempts=3) as client, pytest.raises(VendorError):
        backfill(engine, ref, streams=["customers"], client=client)
    assert len(pulled_records(engine, "customers")) == 20  # pages 1 and 2 kept
    with engine.connect() as conn:
        state = conn.execute(select(connection_streams)).one()
    assert state.status == "failed" and state.pages == 2
    served.fake.fail.clear()
    with served.client() as client:
        backfill(engine, ref, streams=["customers"], client=client)
    ids = _ids(pulled_records(engine, "customers"))
    assert sorted(ids) == list(range(1, 46))  # no gap, no duplicate
    process_all(engine)
    assert live_profiles(engine) == 45


def test_records_changing_mid_backfill_are_neither_lost_nor_doubled(
    engine: Engine, magento: Callable[..., Served]
) -> None:
    served = magento(customers=25)
    late = 10**6  # seconds after the fake's base time: later than every record

    def save_while_pulling(fake: MagentoFake, path: str, n: int) -> None:
        if path == "customers" and n == 1:
            fake.touch_customer(5, late)  # already read: read again, as a new version
            fake.touch_customer(18, late + 1)  # not read yet: moves behind the cursor
            fake.touch_customer(27, late + 2)  # created now
            # Made visible with a time the cursor has passed (a commit that lagged its
            # updated_at by minutes): no updated_at pull can see it; see below.
            fake.touch_customer(26, 1000 + 60)

    served.fake.after_page = save_while_pulling
    ref = served.connect(engine)
    with served.client() as client:
        backfill(engine, ref, streams=["customers"], client=client)
    records = pulled_records(engine, "customers")
    versions = Counter((r["id"], r["updated_at"]) for r in records)
    assert max(versions.values()) == 1  # no version twice
    by_id = Counter(_ids(records))
    assert set(by_id) == set(range(1, 28)) - {26}
    assert by_id[5] == 2  # the old version and the new one
    assert by_id[18] == 1  # only its new version
    newest = {int(str(r["id"])): r for r in records}
    assert newest[18]["lastname"] == "Changed18"
    process_all(engine)
    assert live_profiles(engine) == 26
    # The limit of any updated_at watermark: 26 is found by its next save, or by a
    # backfill started over (`restart`), which reads everything again.
    with served.client() as client:
        backfill(engine, ref, streams=["customers"], client=client, restart=True)
    assert 26 in _ids(pulled_records(engine, "customers"))
    process_all(engine)
    assert live_profiles(engine) == 27


def test_page_numbers_sorted_by_updated_at_would_lose_a_record(
    magento: Callable[..., Served],
) -> None:
    """Why the keyset: with currentPage, a record saved mid-pull shifts the pages after
    it, and the first record of the next page is never read."""
    served = magento(customers=25)

    def save(fake: MagentoFake, path: str, n: int) -> None:
        if n == 1:
            fake.touch_customer(5, 10**6)

    served.fake.after_page = save
    seen: list[int] = []
    with served.client() as client:
        for response, _ in search_criteria_pages(
            client, "customers/search", sort=[("updated_at", "ASC"), ("entity_id", "ASC")],
            page_size=10,
        ):
            seen.extend(_ids(response.json()["items"]))
    assert 11 not in seen  # lost
    with served.client() as client:
        kept = [r for p in pull_stream(client, "customers", None, page_size=10)
                for r in p.records]
    assert set(_ids(kept)) == set(range(1, 26))


def test_incremental_run_asks_only_since_the_watermark(
    engine: Engine, magento: Callable[..., Served]
) -> None:
    served = magento(customers=15)
    ref = served.connect(engine)
    with served.client() as client:
        backfill(engine, ref, streams=["customers"], client=client)
    last = served.fake.last_updated("customers")  # customer 15's: 1000 + 5 * 60 s
    assert last == "2024-01-01 00:21:40"
    served.fake.requests.clear()
    served.fake.touch_customer(5, 1000 + 60 * 60)
    served.fake.touch_customer(16, 1000 + 61 * 60)
    with served.client() as client:
        backfill(engine, ref, streams=["customers"], client=client)
    asked = served.fake.api_requests("customers")
    # The watermark: the last record's updated_at less the 60 s overlap.
    assert asked[0][f"{UPDATED}[field]"] == "updated_at"
    assert asked[0][f"{UPDATED}[conditionType]"] == "gteq"
    assert asked[0][f"{UPDATED}[value]"] == "2024-01-01 00:20:40"
    second_run = pulled_records(engine, "customers")[15:]
    # 12-14 share the minute before 15's: the overlap reads them again.
    assert sorted(_ids(second_run)) == [5, 12, 13, 14, 15, 16]
    process_all(engine)
    assert live_profiles(engine) == 16
    assert event_names(engine)["identify"] == 17  # re-read versions applied once
    # A run with nothing new keeps its watermark.
    served.fake.requests.clear()
    with served.client() as client:
        backfill(engine, ref, streams=["customers"], client=client)
    again = served.fake.api_requests("customers")
    assert again[0][f"{UPDATED}[value]"] == "2024-01-01 01:16:40"  # 16's less 60 s


def test_429_retry_after_is_honoured(magento: Callable[..., Served]) -> None:
    served = magento(customers=15, retry_after="7")
    served.fake.fail[("customers", 2)] = (429, 1)
    with served.client() as client:
        records = [r for p in pull_stream(client, "customers", None, page_size=10)
                   for r in p.records]
    assert 7.0 in served.waits  # the client's sleep, recorded
    assert sorted(_ids(records)) == list(range(1, 16))
    assert len(served.fake.api_requests("customers")) == 3


def test_5xx_and_slow_answers_are_retried(magento: Callable[..., Served]) -> None:
    served = magento(customers=25, retry_after="0")
    served.fake.fail[("customers", 1)] = (503, 2)
    served.fake.slow[("customers", 4)] = 0.8
    with served.client(timeout=0.3) as client:
        records = [r for p in pull_stream(client, "customers", None, page_size=10)
                   for r in p.records]
    assert sorted(_ids(records)) == list(range(1, 26))
    assert len(served.fake.api_requests("customers")) == 6  # 2 refused, 1 timed out


def test_client_keeps_to_requests_per_second(magento: Callable[..., Served]) -> None:
    # Real clock here: the fake counts requests in each second and answers 429 above
    # its limit. One of slack: the fake sees a request when it arrives, the bucket when
    # it leaves, and a loaded machine delays some arrivals (by up to 0.2 s is absorbed).
    served = magento(customers=80, max_per_second=6)
    settings = MagentoSettings.model_validate(served.settings(requests_per_second=5))
    started = time.monotonic()
    with build_client(settings) as client:
        pages = list(pull_stream(client, "customers", None, page_size=10))
    took = time.monotonic() - started
    assert len(pages) == 8
    assert served.fake.over_limit == 0
    assert took >= 1.4  # 8 requests at 5 a second, evenly spaced: no burst
