"""Fixtures for the Magento connector: the fake store served over HTTP, connections."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from guestlist.connectors import connections, load_all
from guestlist.connectors._http.client import VendorClient
from guestlist.connectors.magento.client import build_client
from guestlist.connectors.magento.settings import MagentoSettings
from guestlist.store.tables import events, inbox, profiles
from tests.fakes import serve
from tests.fakes.magento import MagentoFake

load_all()


@dataclass
class Served:
    fake: MagentoFake
    url: str
    waits: list[float] = field(default_factory=list)
    now: float = 0.0  # the recorded client's clock: moves only when it "sleeps"

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        # At least a microsecond: TokenBucket can ask for a wait of 1e-17 s (1 - 0.999…
        # tokens), which a float clock near 2.0 cannot move by, and would ask forever.
        self.now += max(seconds, 1e-6)

    def settings(self, **extra: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "store_url": "https://shop.example",
            "base_url": self.url,
            "admin_username": self.fake.admin_username,
            "admin_password": self.fake.admin_password,
            "requests_per_second": 50,
            "page_size": 10,
        }
        raw.update(extra)
        return {k: v for k, v in raw.items() if v is not None}

    def client(self, **extra: Any) -> VendorClient:
        """A client whose waits (backoff, Retry-After, the bucket) are recorded, not slept."""
        timeout = extra.pop("timeout", 5.0)
        attempts = extra.pop("attempts", 6)
        return build_client(
            MagentoSettings.model_validate(self.settings(**extra)),
            sleep=self._sleep,
            clock=lambda: self.now,
            timeout=timeout,
            attempts=attempts,
        )

    def connect(self, engine: Engine, name: str = "shop", **extra: Any) -> int:
        info, _ = connections.add(engine, "magento", name, self.settings(**extra))
        return info.id


@pytest.fixture
def magento() -> Iterator[Callable[..., Served]]:
    """`magento(customers=…, orders=…, …)`: a fake store served for the test."""
    stack: list[Any] = []

    def start(**kwargs: Any) -> Served:
        fake = MagentoFake(**kwargs)
        ctx = serve(fake.app())
        url = ctx.__enter__()
        stack.append(ctx)
        return Served(fake, url)

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


def live_profiles(engine: Engine) -> int:
    return count(engine, profiles, profiles.c.merged_into.is_(None))


def pulled_records(engine: Engine, stream: str) -> list[dict[str, Any]]:
    import orjson

    with engine.connect() as conn:
        rows = conn.execute(
            select(inbox.c.body).where(inbox.c.kind == f"magento.pull.{stream}").order_by(
                inbox.c.id
            )
        ).all()
    out: list[dict[str, Any]] = []
    for row in rows:
        out.extend(orjson.loads(bytes(row.body))["records"])
    return out


def event_names(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.name, func.count()).group_by(events.c.name)
        ).all()
    return {str(name or "identify"): int(n) for name, n in rows}
