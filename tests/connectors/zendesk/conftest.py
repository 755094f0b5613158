"""The Zendesk fake served over HTTP, a client bound to it, and time that never waits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import TokenBucket
from guestlist.connectors.zendesk.client import EXPORT_BURST, EXPORT_RATE, make_client
from guestlist.connectors.zendesk.settings import ZendeskSettings
from tests.connectors.helpers import FakeTime, served
from tests.connectors.helpers import Served as ServedFake
from tests.connectors.zendesk.helpers import settings
from tests.fakes.zendesk import EPOCH, ZendeskFake

Served = ServedFake[ZendeskFake]


@pytest.fixture
def fake_time() -> FakeTime:
    """A clock (epoch seconds) the limiter and the fake read; sleep only moves it."""
    return FakeTime(now=float(EPOCH + 100_000))


@pytest.fixture
def zendesk(fake_time: FakeTime) -> Iterator[Served]:
    fake = ZendeskFake(count=35, clock=fake_time.clock)
    with served(fake) as it:
        yield it


def zendesk_settings(url: str, **overrides: object) -> ZendeskSettings:
    return ZendeskSettings.model_validate(settings(base_url=url, **overrides))


@pytest.fixture
def client(zendesk: Served, fake_time: FakeTime) -> Iterator[VendorClient]:
    limiter = TokenBucket(EXPORT_BURST, EXPORT_RATE, clock=fake_time.clock,
                          sleep=fake_time.sleep)
    with make_client(zendesk_settings(zendesk.url), sleep=fake_time.sleep,
                     limiter=limiter) as made:
        yield made
