"""Engine set-up: SQLite's write lock, read connections, bulk writes (both databases)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import Engine, func, select

from guestlist.keys import ensure_source
from guestlist.store.bulk import allocate_ids, bulk_insert
from guestlist.store.engine import make_engine, read_connection
from guestlist.store.tables import profiles, sources
from guestlist.store.types import utcnow


def test_reads_do_not_wait_for_a_writer(engine: Engine, db_url: str) -> None:
    with engine.begin() as conn:
        ensure_source(conn, "web")
    other = make_engine(db_url)
    try:
        with engine.begin() as writer:  # holds SQLite's write lock until the block ends
            writer.execute(sources.update().values(default_region="CA"))
            start = time.monotonic()
            with read_connection(other) as reader:
                # The last committed state, at once.
                assert reader.scalar(select(sources.c.default_region)) == "US"
            assert time.monotonic() - start < 0.2
            if db_url.startswith("sqlite"):
                # A writing transaction queues for the lock instead (and here times out).
                with other.connect() as c:
                    raw: Any = c.connection.driver_connection
                    raw.execute("PRAGMA busy_timeout=100")
                    with pytest.raises(sqlalchemy.exc.OperationalError):
                        c.scalar(select(func.count()).select_from(sources))
    finally:
        other.dispose()


def test_allocated_ids_are_fresh_and_usable(engine: Engine) -> None:
    now = utcnow()
    with engine.begin() as conn:
        first = allocate_ids(conn, profiles, 3)
        bulk_insert(
            conn,
            profiles,
            [
                {"id": i, "created_at": now, "first_seen_at": now, "last_seen_at": now}
                for i in first
            ],
        )
    with engine.begin() as conn:
        second = allocate_ids(conn, profiles, 2)
        assert allocate_ids(conn, profiles, 0) == []
    assert len(set(first)) == 3
    assert not set(first) & set(second)
    with engine.connect() as conn:
        stored = conn.execute(select(profiles.c.id, profiles.c.created_at)).all()
    assert sorted(r.id for r in stored) == sorted(first)
    assert all(r.created_at == now for r in stored)
