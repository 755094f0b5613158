"""A worker killed with SIGKILL mid-batch loses nothing and applies nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest
from sqlalchemy import Engine, func, select

from guestlist.keys import create_key
from guestlist.store.engine import read_connection
from guestlist.store.tables import events, inbox, traits
from tests.conftest import LiveServer

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENVELOPES = 400
PER_ENVELOPE = 50


def _batches() -> list[bytes]:
    bodies = []
    for b in range(ENVELOPES):
        batch = []
        for i in range(PER_ENVELOPE):
            n = b * PER_ENVELOPE + i
            user = f"u{n % 700}"
            if n % 3 == 0:
                batch.append({"type": "identify", "userId": user, "messageId": f"m{n}",
                              "timestamp": (T0 + timedelta(seconds=n)).isoformat(),
                              "traits": {"email": f"{user}@shop.test", "visits": n}})
            else:
                batch.append({"type": "track", "userId": user, "event": "Order Completed",
                              "messageId": f"m{n}", "properties": {"total": n % 90}})
        bodies.append(orjson.dumps({"batch": batch}))
    return bodies


def _count(engine: Engine, query: object) -> int:
    # A reader that does not queue for SQLite's write lock, which the worker holds
    # almost all the time: polling must not starve.
    with read_connection(engine) as conn:
        return int(conn.scalar(query) or 0)  # type: ignore[call-overload]


def _wait(predicate: Callable[[], bool], seconds: float = 180) -> None:
    # Only a guard against a hang: a loaded machine (two test workers and more) can need
    # over a minute for the 400 envelopes on PostgreSQL.
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.002)


@pytest.mark.slow
def test_kill_9_mid_batch_then_restart_processes_every_event_once(
    engine: Engine, db_url: str, live_server_factory: type[LiveServer]
) -> None:
    with engine.begin() as conn:
        _, key = create_key(conn, "write", "web")
    server = live_server_factory("--no-worker").start()
    bodies = _batches()
    with httpx.Client(base_url=server.url, auth=(key, "")) as client:
        for body in bodies:
            assert client.post("/v1/batch", content=body,
                               headers={"content-type": "application/json"}).status_code == 200
        # A client retry of an already accepted batch: same messageIds again.
        assert client.post("/v1/batch", content=bodies[0],
                           headers={"content-type": "application/json"}).status_code == 200
    accepted = ENVELOPES + 1
    assert _count(engine, select(func.count()).select_from(inbox)) == accepted

    env = {**os.environ, "GUESTLIST_DATABASE_URL": db_url, "GUESTLIST_WORKER_BATCH_SIZE": "1"}
    command = [sys.executable, "-m", "guestlist.cli", "worker"]
    processed = select(func.count()).where(inbox.c.status == "processed")
    worker = subprocess.Popen(command, env=env)
    try:
        _wait(lambda: _count(engine, processed) >= 5)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    done_at_kill = _count(engine, processed)
    assert done_at_kill < accepted, "the worker finished before it could be killed"

    restarted = subprocess.Popen(command, env=env)
    try:
        _wait(lambda: _count(engine, processed) == accepted)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(30)

    total = ENVELOPES * PER_ENVELOPE
    assert _count(engine, select(func.count()).select_from(events)) == total
    assert _count(engine, select(func.count(events.c.message_id.distinct()))) == total
    assert _count(engine, select(func.count()).where(inbox.c.status != "processed")) == 0
    # Latest by event time: each user's last identify carries its highest `visits`.
    expected: dict[int, int] = {}
    for n in range(0, total, 3):
        expected[n % 700] = n
    with engine.connect() as conn:
        visits = conn.scalars(select(traits.c.value).where(traits.c.name == "visits")).all()
    assert sorted(visits) == sorted(expected.values())
