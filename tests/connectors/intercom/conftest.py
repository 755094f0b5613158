"""The Intercom fake served over HTTP, a client bound to it, and time that never waits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import Budget, TokenBucket
from guestlist.connectors.intercom.client import BURST, RATE_PER_SECOND, make_client, rate_budget
from guestlist.connectors.intercom.settings import IntercomSettings
from tests.connectors.helpers import FakeTime, served
from tests.connectors.helpers import Served as ServedFake
from tests.connectors.intercom.helpers import settings
from tests.fakes.intercom import EPOCH, IntercomFake

Served = ServedFake[IntercomFake]


@pytest.fixture
def fake_time() -> FakeTime:
    """A clock (epoch seconds) the limiter and the fake read; sleep only moves it."""
    return FakeTime(now=float(EPOCH + 100_000))


@pytest.fixture
def intercom(fake_time: FakeTime) -> Iterator[Served]:
    """The fake; a test that leaves spec violations behind fails."""
    fake = IntercomFake(count=40, clock=fake_time.clock)
    with served(fake) as it:
        yield it
    assert fake.violations == [], "requests the Intercom spec does not allow"


def intercom_settings(url: str, **overrides: object) -> IntercomSettings:
    return IntercomSettings.model_validate(settings(base_url=url, **overrides))


@pytest.fixture
def client(intercom: Served, fake_time: FakeTime) -> Iterator[VendorClient]:
    def budget(response: httpx.Response) -> Budget | None:
        return rate_budget(response, now=fake_time.clock)

    limiter = TokenBucket(BURST, RATE_PER_SECOND, read_budget=budget,
                          clock=fake_time.clock, sleep=fake_time.sleep)
    with make_client(intercom_settings(intercom.url), sleep=fake_time.sleep,
                     limiter=limiter) as made:
        yield made
