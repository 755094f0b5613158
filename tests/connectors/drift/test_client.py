"""The contacts client against the fake: lookups, write-back, the limit, a bad token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine

from guestlist.connectors import connections
from guestlist.connectors._http.client import VendorClient, VendorError
from guestlist.connectors._http.ratelimit import TokenBucket, Unlimited
from guestlist.connectors.base import ConnectorError
from guestlist.connectors.drift import client as api
from guestlist.connectors.drift.settings import DriftSettings
from tests.connectors.drift.helpers import settings
from tests.connectors.helpers import FakeTime
from tests.fakes import serve
from tests.fakes.drift import DriftFake


@dataclass
class Served:
    fake: DriftFake
    url: str
    time: FakeTime

    def settings(self, **overrides: object) -> DriftSettings:
        return DriftSettings.model_validate(settings(base_url=self.url, **overrides))

    def client(self, limiter: object = None) -> VendorClient:
        bucket = limiter or TokenBucket(api.BURST, api.RATE_PER_SECOND,
                                        clock=self.time.clock, sleep=self.time.sleep)
        return api.make_client(self.settings(), sleep=self.time.sleep,
                               limiter=bucket)  # type: ignore[arg-type]


@pytest.fixture
def drift() -> Iterator[Served]:
    time = FakeTime(now=1_767_225_600.0)
    fake = DriftFake(clock=time.clock, capacity=5, leak=2.0)
    with serve(fake.app) as url:
        yield Served(fake, url, time)


def test_lookup_create_and_update(drift: Served) -> None:
    with drift.client() as client:
        assert api.find_by_email(client, "priya@example.com") == []
        made = api.create_contact(client, {"email": "priya@example.com", "name": "Priya"})
        assert made["attributes"]["name"] == "Priya"
        (found,) = api.find_by_email(client, "PRIYA@example.com")
        assert found["id"] == made["id"]
        assert api.get_contact(client, made["id"]) == found
        assert api.get_contact(client, 1) is None  # 404 → None
        # A duplicate email is refused unless the externalId differs.
        with pytest.raises(VendorError) as duplicate:
            api.create_contact(client, {"email": "priya@example.com", "name": "Again"})
        assert duplicate.value.status == 409
        other = api.create_contact(client, {"email": "priya@example.com", "externalId": "s-2"})
        assert len(api.find_by_email(client, "priya@example.com")) == 2
        updated = api.update_contact(client, other["id"], {"phone": "+18025550100"})
        assert updated["attributes"]["phone"] == "+18025550100"
        with pytest.raises(ConnectorError):
            api.create_contact(client, {"name": "No email"})  # refused before sending
        assert "contacts API answered" in api.check(client)


def test_the_bucket_keeps_under_drifts_and_a_429_is_retried(drift: Served) -> None:
    fake = drift.fake
    with drift.client() as client:
        for i in range(20):
            api.find_by_email(client, f"p{i}@example.com")
    assert fake.throttled == 0 and fake.highest <= fake.capacity
    # Without a bucket the leaky bucket overflows: 429s, retried with backoff (Drift
    # documents no Retry-After), and every lookup still answered.
    before = len(drift.time.waits)
    with drift.client(limiter=Unlimited()) as blind:
        for i in range(12):
            assert api.find_by_email(blind, f"p{i}@example.com") == []
    assert fake.throttled > 0 and len(drift.time.waits) > before


def test_retry_after_is_honoured_when_sent(drift: Served) -> None:
    drift.fake.retry_after = 7
    with drift.client(limiter=Unlimited()) as blind:
        for i in range(8):
            api.find_by_email(blind, f"p{i}@example.com")
    assert 7.0 in drift.time.waits


def test_a_wrong_token(drift: Served) -> None:
    with api.make_client(drift.settings(access_token="nope")) as wrong, \
            pytest.raises(VendorError) as failed:
        api.check(wrong)
    assert failed.value.status == 401 and "nope" not in str(failed.value)


def test_connections_test_makes_one_lookup(engine: Engine, drift: Served) -> None:
    info, _ = connections.add(engine, "drift", "Cellar chat", settings(base_url=drift.url))
    ok, message = connections.check_connection(engine, info.id)
    assert ok and "contacts API answered" in message
    assert drift.fake.requests == [("GET", "/contacts")]
