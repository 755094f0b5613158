"""The Square fake served over HTTP, a client bound to it, and time that never waits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from guestlist.connectors._http.client import VendorClient
from guestlist.connectors._http.ratelimit import TokenBucket
from guestlist.connectors.square.client import BURST, RATE_PER_SECOND, make_client
from guestlist.connectors.square.settings import SquareSettings
from tests.connectors.helpers import FakeTime
from tests.connectors.helpers import Served as ServedFake
from tests.connectors.square.helpers import settings
from tests.fakes import serve
from tests.fakes.square import SquareFake

Served = ServedFake[SquareFake]


class _Switch:
    """One server for the whole session, answering with each test's own fake."""

    fake: SquareFake | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.fake is not None, "no Square fake for this test"
        await self.fake.app(scope, receive, send)


@pytest.fixture(scope="session")
def _square_server() -> Iterator[tuple[_Switch, str]]:
    switch = _Switch()
    with serve(switch) as url:
        yield switch, url


@pytest.fixture
def square(_square_server: tuple[_Switch, str]) -> Iterator[Served]:
    """A fresh fake; a test that leaves spec violations behind fails."""
    switch, url = _square_server
    fake = switch.fake = SquareFake()
    yield Served(fake, url)
    switch.fake = None
    assert fake.violations == [], "requests the Square spec does not allow"


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def square_settings(url: str, **overrides: object) -> SquareSettings:
    return SquareSettings.model_validate(settings(base_url=url, **overrides))


@pytest.fixture
def client(square: Served, fake_time: FakeTime) -> Iterator[VendorClient]:
    limiter = TokenBucket(BURST, RATE_PER_SECOND, clock=fake_time.clock, sleep=fake_time.sleep)
    with make_client(
        square_settings(square.url), sleep=fake_time.sleep, limiter=limiter
    ) as made:
        yield made
