"""Backfills against the fake Typeform API: every response once, resumable after a
failure, 429s honoured, never over 2 requests a second, and the next run asks only for
responses submitted since the last one (less an hour's overlap, applied once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import TokenBucket, forget_limiter
from guestlist.connectors.backfill import backfill
from guestlist.connectors.connections import add, check_connection
from guestlist.connectors.typeform.client import make_client, response_pages
from guestlist.connectors.typeform.settings import TypeformSettings
from guestlist.pipeline import process_all
from guestlist.store.tables import age_records, connection_streams, consent_records, events
from tests.connectors.typeform.helpers import count, live_profiles
from tests.fakes import serve
from tests.fakes.typeform import FORM_ID, FakeTypeform, Fault

N, PAGE = 90, 25  # 4 pages of responses


@pytest.fixture
def fake() -> FakeTypeform:
    return FakeTypeform.generated(N)


@pytest.fixture
def url(fake: FakeTypeform) -> Iterator[str]:
    with serve(fake.app()) as base:
        yield base


FORMS = {FORM_ID: {"fields": {
    "email": "email", "first_name": "first_name", "dob": "birthday",
    "email_optin": {"consent": {"channel": "email", "legal_basis": "gdpr_consent"}},
}}}


def connect(engine: Engine, url: str, token: str = "tfp_test",
            name: str = "Bottle Shop forms") -> int:
    info, _ = add(engine, "typeform", name, {
        "access_token": token, "base_url": url, "page_size": PAGE, "forms": FORMS,
    })
    forget_limiter("typeform", info.id)
    return info.id


def quick_client(url: str, waits: list[float]) -> VendorClient:
    """The connector's headers, a fast pace on a fake clock, and sleeps recorded (the
    clock moves by them) instead of slept."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = TokenBucket(100, 100, clock=lambda: now[0] + time.monotonic(), sleep=sleep)
    return VendorClient(url, headers={"Authorization": "Bearer tfp_test"},
                        limiter=limiter, sleep=sleep)


def checkpoint(engine: Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(connection_streams)).one()


def submitted(engine: Engine) -> int:
    return count(engine, events, events.c.name == "Form Submitted")


def test_the_pace_keeps_under_two_a_second(fake: FakeTypeform, url: str) -> None:
    raw = TypeformSettings.model_validate({"access_token": "tfp_test", "base_url": url,
                                           "page_size": PAGE, "forms": FORMS})
    with make_client(raw) as client:  # the connector's own client and limiter
        pages = list(response_pages(client, raw, None))
    assert len(pages) == 4
    assert fake.throttled == 0  # the client never exceeded the limit
    gaps = [b - a for a, b in zip(fake.times, fake.times[1:], strict=False)]
    assert len(gaps) == 4 and all(g >= 0.5 for g in gaps)  # evenly, under 2 a second


def test_backfill_then_incremental_run(engine: Engine, fake: FakeTypeform, url: str) -> None:
    cid = connect(engine, url)
    fake.rate = fake.burst = 1000
    waits: list[float] = []
    [done] = backfill(engine, cid, client=quick_client(url, waits))
    assert (done.stream, done.pages, done.total) == ("responses", 4, N)
    # Paged newest first with `before` = the last token seen, completed responses only.
    assert [p.get("before") for p in fake.seen] == [
        None, *[f"tok{N - PAGE * k:06d}" for k in range(1, 4)]]
    assert all(p["page_size"] == str(PAGE) and p["response_type"] == "completed"
               for p in fake.seen)
    process_all(engine)
    assert live_profiles(engine) == N
    assert submitted(engine) == N
    assert count(engine, consent_records) == len([i for i in range(N) if i % 3])  # C-4
    assert count(engine, age_records) == N  # A-3 dob_provided

    # The next run starts from the newest submission less an hour (Typeform may hold
    # very recent responses back), and the overlap is applied once.
    newest = datetime(2026, 1, 5, 9, 0, tzinfo=UTC) + timedelta(minutes=7 * (N - 1))
    state = orjson.loads(checkpoint(engine).checkpoint)
    assert state == {"since": {FORM_ID: (newest - timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%S")}}
    for i in range(N, N + 3):
        fake.add(i, newest + timedelta(minutes=i - N + 1))
    fake.seen.clear()
    [again] = backfill(engine, cid, client=quick_client(url, waits))
    assert [p["since"] for p in fake.seen] == [state["since"][FORM_ID]]
    assert again.total == 3 + 9  # 3 new, 9 within the hour's overlap
    process_all(engine)
    assert live_profiles(engine) == N + 3
    assert submitted(engine) == N + 3


def test_a_failed_backfill_resumes_without_gap_or_duplicate(
    engine: Engine, fake: FakeTypeform, url: str
) -> None:
    cid = connect(engine, url)
    fake.rate = fake.burst = 1000
    fake.faults.append(Fault(request=3, status=503, times=-1))
    waits: list[float] = []
    with pytest.raises(VendorError) as failed:
        backfill(engine, cid, client=quick_client(url, waits))
    assert failed.value.status == 503
    assert len(waits) == 5  # retried with backoff, then given up
    assert checkpoint(engine).pages == 2
    fake.faults.clear()
    # Meanwhile the response it continues `before` is deleted at Typeform (an
    # erasure): the token is unknown now, so the pull goes on from its time instead.
    gone = orjson.loads(checkpoint(engine).checkpoint)["before"]
    fake.responses = [r for r in fake.responses if r["token"] != gone]
    fake.seen.clear()
    [done] = backfill(engine, cid, client=quick_client(url, waits))
    assert "before" in fake.seen[0] and "until" in fake.seen[1]
    assert done.pages == 4
    process_all(engine)
    assert live_profiles(engine) == N
    assert submitted(engine) == N


def test_429_retry_after_is_honoured(engine: Engine, fake: FakeTypeform, url: str) -> None:
    cid = connect(engine, url)
    fake.rate = fake.burst = 1000
    fake.faults.append(Fault(request=2, status=429, times=1, retry_after="3"))
    waits: list[float] = []
    [done] = backfill(engine, cid, client=quick_client(url, waits))
    assert done.pages == 4
    assert 3.0 in waits


def test_check_and_a_wrong_token(engine: Engine, url: str) -> None:
    cid = connect(engine, url)
    ok, said = check_connection(engine, cid)
    assert ok and "bottleshop" in said
    bad = connect(engine, url, token="wrong", name="Other forms")
    with pytest.raises(VendorError) as failed:
        backfill(engine, bad)
    assert failed.value.status == 401  # not retried
