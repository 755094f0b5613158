"""Backfills of the contacts stream against the fake: whole, resumed, incremental,
rate-limited."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import Engine

from guestlist.connectors import connections
from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import Unlimited
from guestlist.connectors.backfill import backfill
from guestlist.connectors.intercom import client as api
from guestlist.pipeline import process_all
from tests.connectors.helpers import (
    count_events,
    live_profiles,
    profile_of,
    stream_row,
    traits_of,
)
from tests.connectors.intercom.conftest import FakeTime, Served, intercom_settings
from tests.connectors.intercom.helpers import settings
from tests.fakes.intercom import EPOCH, TAGS, contact_id

N = 40
PER_PAGE = 10  # four pages


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "PER_PAGE", PER_PAGE)


def connect(engine: Engine, intercom: Served) -> int:
    info, _ = connections.add(engine, "intercom", "Cellar chat", settings(base_url=intercom.url))
    return info.id


def test_full_backfill_then_an_incremental_run(
    engine: Engine, intercom: Served, client: VendorClient
) -> None:
    fake = intercom.fake
    cid = connect(engine, intercom)
    (done,) = backfill(engine, cid, client=client)
    assert (done.pages, done.records, done.total) == (4, N, N)
    process_all(engine)
    assert live_profiles(engine) == N
    assert count_events(engine, type_="identify") == N
    unsubscribed = [c for c in fake.contacts if c["unsubscribed_from_emails"]]
    assert count_events(engine, name="Consent Updated") == len(unsubscribed)  # C-5
    pid = profile_of(engine, "external", f"intercom:contact:{contact_id(0)}")
    assert pid is not None
    t = traits_of(engine, pid)
    assert t["email"] == "person0@example.com" and t["tags"] == [TAGS["101"]]
    assert fake.searches[0] == {
        "query": {"field": "updated_at", "operator": ">", "value": 0},
        "pagination": {"per_page": PER_PAGE},
        "sort": {"field": "updated_at", "order": "ascending"},
    }
    assert fake.searches[1]["pagination"]["starting_after"]
    newest = EPOCH + 1000 + (N - 1) * 60
    assert orjson.loads(stream_row(engine, cid).checkpoint) == {"since": newest - api.OVERLAP}

    # The next run asks only for what changed since the watermark (minus the overlap).
    fake.touch(3, newest + 120)
    fake.touch(7, newest + 180)
    before = len(fake.searches)
    (done,) = backfill(engine, cid, client=client)
    asked = fake.searches[before:]
    assert asked[0]["query"] == {"field": "updated_at", "operator": ">",
                                 "value": newest - api.OVERLAP}
    # The two changed, and the ten in the overlap again (the same versions: applied once).
    assert done.records == 2 + 10
    process_all(engine)
    assert live_profiles(engine) == N
    assert count_events(engine, type_="identify") == N + 2


def test_killed_midway_then_resumed_has_no_gap_and_no_duplicate(
    engine: Engine, intercom: Served, client: VendorClient
) -> None:
    fake = intercom.fake
    cid = connect(engine, intercom)
    fake.fail_search[2] = [500] * 20  # the third page fails beyond the client's retries
    with pytest.raises(VendorError):
        backfill(engine, cid, client=client)
    row = stream_row(engine, cid)
    assert (row.status, row.pages, row.records) == ("failed", 2, 2 * PER_PAGE)
    saved = orjson.loads(row.checkpoint)
    assert saved["cursor"] and saved["seen_max"]
    fake.fail_search.clear()  # the outage ends
    (done,) = backfill(engine, cid, client=client)
    assert done.status == "done" and done.records == N
    resumed = [s for s in fake.searches if s["pagination"].get("starting_after") == saved[
        "cursor"]]
    assert resumed, "the run resumed at the saved cursor"
    process_all(engine)
    assert live_profiles(engine) == N
    assert count_events(engine, type_="identify") == N


def test_the_client_keeps_under_the_limit_and_a_429_is_waited_out(
    engine: Engine, intercom: Served, client: VendorClient, fake_time: FakeTime
) -> None:
    fake = intercom.fake
    fake.limit = 3  # three calls per 10-second window: the remaining count runs out
    cid = connect(engine, intercom)
    (done,) = backfill(engine, cid, client=client)
    assert done.records == N
    assert fake.throttled == 0 and fake.most_in_window <= 3
    assert fake_time.waits and max(fake_time.waits) <= fake.window + 1

    # A client that does not read the headers gets 429s, retried after a backoff.
    blind = api.make_client(intercom_settings(intercom.url), sleep=fake_time.sleep,
                            limiter=Unlimited())
    waits = len(fake_time.waits)
    with blind:
        pages = list(api.contact_pages(blind, None))
    assert sum(len(p.records) for p in pages) == N
    assert fake.throttled > 0 and len(fake_time.waits) > waits


def test_check_and_a_wrong_token(intercom: Served, client: VendorClient) -> None:
    assert api.check(client) == "workspace 'Cellar & Co' (a86dr8yl), as owner@cellar.example"
    with api.make_client(intercom_settings(intercom.url, access_token="nope")) as wrong, \
            pytest.raises(VendorError) as failed:
        api.check(wrong)
    assert failed.value.status == 401 and "nope" not in str(failed.value)
