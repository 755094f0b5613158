"""What the connector tests share: the samples, time that never waits, a fake served over
HTTP, adding a connection and reading its log through the API (the app in-process or a
live server), and reading the results from the database.

The per-platform helpers import these; where a platform's tests read something another
way (another order, another check), that platform keeps its own version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import httpx
from sqlalchemy import Engine, func, select

from guestlist.store.tables import (
    age_records,
    connection_streams,
    consent_records,
    events,
    identifiers,
    inbox,
    profiles,
    traits,
)
from tests.fakes import serve

CONNECTORS = Path(__file__).resolve().parents[2] / "src/guestlist/connectors"


# -- samples -------------------------------------------------------------------------


def samples_dir(platform: str) -> Path:
    """The connector's samples folder in the source tree."""
    return CONNECTORS / platform / "samples"


def sample_readers(samples: Path) -> tuple[Callable[[str], bytes], Callable[[str], Any]]:
    """`sample_bytes(name)` (the file as is) and `sample(name)` (its JSON) for a folder."""

    def sample_bytes(name: str) -> bytes:
        return (samples / name).read_bytes()

    def sample(name: str) -> Any:
        return json.loads(sample_bytes(name))

    return sample_bytes, sample


# -- time and fakes --------------------------------------------------------------------


@dataclass
class FakeTime:
    """A clock the limiter (and the fake) reads and a sleep that only records and moves it."""

    now: float = 1000.0
    waits: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


class Fake(Protocol):
    """A vendor fake: an ASGI app."""

    @property
    def app(self) -> Any: ...


FakeT = TypeVar("FakeT", bound=Fake)


@dataclass
class Served(Generic[FakeT]):
    """A fake and the base URL it answers on."""

    fake: FakeT
    url: str


@contextmanager
def served(fake: FakeT) -> Iterator[Served[FakeT]]:
    """Serve the fake over HTTP for the block."""
    with serve(fake.app) as url:
        yield Served(fake, url)


# -- the API: adding a connection, its log ---------------------------------------------


def add_connection(
    client: httpx.Client,
    headers: Mapping[str, str],
    platform: str,
    name: str,
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """Add a connection through the API (`client` reaches the app in-process or a live
    server; `headers` carry an admin key); the answer's body."""
    r = client.post(
        "/api/connections",
        json={"platform": platform, "name": name, "settings": settings},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def connection_log(
    client: httpx.Client, headers: Mapping[str, str], cid: int, *, check: bool = False
) -> list[dict[str, Any]]:
    """The connection's log through the API; with `check`, the answer must be a 200."""
    r = client.get(f"/api/connections/{cid}/log", headers=headers)
    if check:
        assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


# -- the database --------------------------------------------------------------------


def live_profiles(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(
                select(func.count())
                .select_from(profiles)
                .where(profiles.c.merged_into.is_(None))
            )
            or 0
        )


def count_events(engine: Engine, name: str | None = None, type_: str | None = None) -> int:
    query = select(func.count()).select_from(events)
    if name is not None:
        query = query.where(events.c.name == name)
    if type_ is not None:
        query = query.where(events.c.type == type_)
    with engine.connect() as conn:
        return int(conn.scalar(query) or 0)


def inbox_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(inbox).order_by(inbox.c.id)))


def profile_of(engine: Engine, kind: str, key: str) -> int | None:
    with engine.connect() as conn:
        pid = conn.scalar(
            select(identifiers.c.profile_id).where(
                identifiers.c.kind == kind, identifiers.c.key == key
            )
        )
    return int(pid) if pid is not None else None


def traits_of(engine: Engine, profile_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(traits.c.name, traits.c.value).where(traits.c.profile_id == profile_id)
        )
        return {r.name: r.value for r in rows}


def consent_of(engine: Engine, profile_id: int) -> list[Any]:
    """The profile's consent records in ledger order (`seq`)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(consent_records)
                .where(consent_records.c.profile_id == profile_id)
                .order_by(consent_records.c.seq)
            )
        )


def age_of(engine: Engine, profile_id: int) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(age_records)
                .where(age_records.c.profile_id == profile_id)
                .order_by(age_records.c.id)
            )
        )


def events_of(engine: Engine, profile_id: int, name: str | None = None) -> list[Any]:
    query = select(events).where(events.c.profile_id == profile_id).order_by(events.c.id)
    if name is not None:
        query = query.where(events.c.name == name)
    with engine.connect() as conn:
        return list(conn.execute(query))


def stream_row(engine: Engine, cid: int, stream: str | None = None) -> Any:
    """The connection's one row in `connection_streams` (of `stream`, where given)."""
    query = select(connection_streams).where(connection_streams.c.connection_id == cid)
    if stream is not None:
        query = query.where(connection_streams.c.stream == stream)
    with engine.connect() as conn:
        return conn.execute(query).one()
