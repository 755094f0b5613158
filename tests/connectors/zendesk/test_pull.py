"""Backfills of the users stream against the fake: whole, resumed, incremental,
rate-limited."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from guestlist.connectors import connections
from guestlist.connectors._http.client import VendorError
from guestlist.connectors._http.ratelimit import Unlimited
from guestlist.connectors.backfill import backfill
from guestlist.connectors.zendesk import client as api
from guestlist.pipeline import process_all
from guestlist.store.tables import age_records
from tests.connectors.helpers import (
    count_events,
    live_profiles,
    profile_of,
    stream_row,
    traits_of,
)
from tests.connectors.zendesk.conftest import FakeTime, Served, zendesk_settings
from tests.connectors.zendesk.helpers import settings
from tests.fakes.zendesk import API_TOKEN, EPOCH, OAUTH_TOKEN

N = 35
PER_PAGE = 10  # four pages
CUSTOMERS = N - sum(1 for i in range(N) if i % 7 == 3)


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "PER_PAGE", PER_PAGE)


def connect(engine: Engine, zendesk: Served, **overrides: Any) -> int:
    info, _ = connections.add(engine, "zendesk", "Cellar support",
                              settings(base_url=zendesk.url, **overrides))
    return info.id


def test_full_backfill_then_an_incremental_run(
    engine: Engine, zendesk: Served, client: Any
) -> None:
    fake = zendesk.fake
    cid = connect(engine, zendesk, birthdate_field="birthdate")
    (done,) = backfill(engine, cid, client=client)
    assert (done.pages, done.records) == (4, CUSTOMERS)  # agents are not stored
    assert fake.exports[0] == {"per_page": str(PER_PAGE), "start_time": "0"}
    assert all("cursor" in q and "start_time" not in q for q in fake.exports[1:])
    process_all(engine)
    assert live_profiles(engine) == CUSTOMERS
    assert count_events(engine, type_="identify") == CUSTOMERS
    assert profile_of(engine, "email", "person3@example.com") is None  # an agent
    pid = profile_of(engine, "external", "zendesk:user:9000000")
    assert pid is not None and profile_of(engine, "external", "zendesk:external_id:shop-0") == pid
    t = traits_of(engine, pid)
    assert (t["email"], t["tags"], t["birthday"]) == ("person0@example.com", ["vip"],
                                                      "1970-01-10")
    with engine.connect() as conn:  # the birthday trait is a dob_provided statement
        levels = conn.execute(select(age_records.c.level, func.count()).group_by(
            age_records.c.level)).all()
    assert levels == [("dob_provided", CUSTOMERS)]
    saved = orjson.loads(stream_row(engine, cid).checkpoint)
    assert set(saved) == {"cursor"}

    # The next run continues from the last cursor: only what changed since.
    newest = EPOCH + 1000 + (N - 1) * 60
    fake.touch(4, newest + 120)
    fake.touch(3, newest + 150)  # an agent: asked for, not stored
    fake.touch(8, newest + 180)
    before = len(fake.exports)
    (done,) = backfill(engine, cid, client=client)
    assert fake.exports[before] == {"per_page": str(PER_PAGE), "cursor": saved["cursor"]}
    assert done.records == 2
    process_all(engine)
    assert live_profiles(engine) == CUSTOMERS
    assert count_events(engine, type_="identify") == CUSTOMERS + 2
    changed = profile_of(engine, "email", "person8@example.com")
    assert changed is not None and traits_of(engine, changed)["name"] == "Person 8 (changed)"


def test_killed_midway_then_resumed_has_no_gap_and_no_duplicate(
    engine: Engine, zendesk: Served, client: Any
) -> None:
    fake = zendesk.fake
    cid = connect(engine, zendesk)
    fake.fail_at[2] = [500] * 20  # the third page fails beyond the client's retries
    with pytest.raises(VendorError):
        backfill(engine, cid, client=client)
    row = stream_row(engine, cid)
    assert (row.status, row.pages) == ("failed", 2)
    saved = orjson.loads(row.checkpoint)["cursor"]
    fake.fail_at.clear()  # the outage ends
    before = len(fake.exports)
    (done,) = backfill(engine, cid, client=client)
    assert done.status == "done"
    assert fake.exports[before]["cursor"] == saved  # resumed where it stopped
    process_all(engine)
    assert live_profiles(engine) == CUSTOMERS
    assert count_events(engine, type_="identify") == CUSTOMERS


def test_the_client_keeps_under_ten_a_minute_and_a_429_is_waited_out(
    zendesk: Served, client: Any, fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = zendesk.fake
    monkeypatch.setattr(api, "PER_PAGE", 2)  # 16 pages: more than a minute's budget
    pages = list(api.user_pages(client, zendesk_settings(zendesk.url), None))
    assert sum(len(p.records) for p in pages) == CUSTOMERS
    assert fake.throttled == 0 and fake.most_in_window <= 10
    assert fake_time.waits  # the bucket waited for its refill

    # A client that ignores the limit gets 429s and waits the Retry-After they ask for.
    blind = api.make_client(zendesk_settings(zendesk.url), sleep=fake_time.sleep,
                            limiter=Unlimited())
    waits = len(fake_time.waits)
    with blind:
        again = list(api.user_pages(blind, zendesk_settings(zendesk.url), None))
    assert sum(len(p.records) for p in again) == CUSTOMERS
    assert fake.throttled > 0
    asked = fake_time.waits[waits:]
    assert asked and all(1 <= w <= 60 for w in asked)


def test_a_slow_page_is_waited_for(zendesk: Served, client: Any) -> None:
    zendesk.fake.slow_at[1] = 0.3
    pages = list(api.user_pages(client, zendesk_settings(zendesk.url), None))
    assert sum(len(p.records) for p in pages) == CUSTOMERS


def test_check_oauth_and_a_wrong_token(zendesk: Served, client: Any) -> None:
    assert api.check(client) == "signed in as 'owner@cellar.example' (admin)"
    oauth = zendesk_settings(zendesk.url, email=None, api_token=None, oauth_token=OAUTH_TOKEN)
    with api.make_client(oauth) as bearer:
        assert "owner@cellar.example" in api.check(bearer)
    with api.make_client(zendesk_settings(zendesk.url, api_token="nope")) as wrong, \
            pytest.raises(VendorError) as failed:
        api.check(wrong)
    assert failed.value.status == 401 and "nope" not in str(failed.value)
    assert API_TOKEN not in str(failed.value)
