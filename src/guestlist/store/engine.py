"""Engines and transactions for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from guestlist.settings import get_settings


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _loads(value: Any) -> Any:
    # A SQLite JSON column has NUMERIC affinity, so a bare number comes back as a
    # number; SQLAlchemy lets stdlib json's TypeError through for it, orjson raises.
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


# orjson for JSON columns: the worker serialises every event's properties and traits.
_json: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": _loads}


_HOLDS_WRITER = "guestlist_holds_writer_lock"


class _WriterLock:
    """The threads of this process that write one SQLite file, one at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner: int | None = None

    def acquire(self) -> bool:
        """Take it, unless this thread holds it already (a second writing connection
        of the same thread then meets SQLite's own lock and its busy timeout, as
        before, instead of waiting on itself)."""
        if self.owner == threading.get_ident():
            return False
        if not self.lock.acquire(timeout=60):
            raise TimeoutError("no write lock on the SQLite database after 60 s")
        self.owner = threading.get_ident()
        return True

    def release(self) -> None:
        self.owner = None
        self.lock.release()


POOL_SIZE = 20
POOL_OVERFLOW = 20

_writer_locks: dict[str, _WriterLock] = {}
_writer_locks_guard = threading.Lock()


def _writer_lock(database: str | None) -> _WriterLock:
    """One lock per SQLite file for the whole process, whichever engine opens it."""
    key = os.path.abspath(database) if database and database != ":memory:" else ""
    with _writer_locks_guard:
        return _writer_locks.setdefault(key, _WriterLock())


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine; on SQLite switch on WAL and take the write lock at BEGIN.

    SQLite allows one writer at a time. Starting every transaction with
    `BEGIN IMMEDIATE` makes the server and the workers queue for that lock (up to the
    busy timeout) instead of failing half-way with "database is locked".
    """
    url = url or get_settings().database_url
    parsed = make_url(url)
    if parsed.database not in (None, "", ":memory:"):
        # Connections kept open for the server's busy threads (it runs 40): with
        # SQLAlchemy's 5, busy webhook traffic opened and closed one per request (a new
        # PostgreSQL backend, or SQLite's pragmas, each time): 9 % of the server's CPU.
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"timeout": 60, "check_same_thread": False}, **_json, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            # Index lookups in a growing database: read pages through a memory map and
            # keep more of them (64 MiB; the default is 2 MiB).
            cursor.execute("PRAGMA mmap_size=268435456")
            cursor.execute("PRAGMA cache_size=-65536")
            # Checkpoint every 64 MiB of WAL, not 4: a page rewritten by many batches
            # is copied back once. A 1M-row import ran 15 % faster.
            cursor.execute("PRAGMA wal_autocheckpoint=16384")
            cursor.close()
            register_exact_decimals(dbapi_connection)

        writers = _writer_lock(parsed.database)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get(READ_ONLY, False):
                conn.exec_driver_sql("BEGIN")
                return
            # Threads of this process queue here rather than in SQLite's busy handler,
            # which sleeps and polls: under 48 concurrent webhook requests two thirds of
            # the threads were asleep in BEGIN IMMEDIATE while the lock was free.
            if writers.acquire():
                conn.info[_HOLDS_WRITER] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                _release(conn)
                raise

        def _release(conn: Connection) -> None:
            if conn.info.pop(_HOLDS_WRITER, False):
                writers.release()

        event.listen(engine, "commit", _release)
        event.listen(engine, "rollback", _release)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed, pool_pre_ping=True, **_json, **kwargs)
    # Multi-row INSERT … VALUES instead of one statement per row in a pipeline:
    # several times faster for the batches the worker writes.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL for the life of the process."""
    url = url or get_settings().database_url
    if url not in _engines:
        _engines[url] = make_engine(url)
    return _engines[url]


READ_ONLY = "guestlist_read_only"


def read_connection(engine: Engine) -> Connection:
    """A connection for reads only. On SQLite its transactions do not queue for the
    write lock (a WAL reader sees the last commit and never blocks the writer), so API
    reads and key checks are not held up by a worker's batches."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn


class _ExactSum:
    """SQLite aggregate `gl_exact_sum(x)`: the exact decimal sum of numbers, as text
    ('0' over none). A double counts as its shortest decimal (0.1 is 0.1), as the
    segment evaluator reads JSON numbers; `total()` would add binary doubles."""

    def __init__(self) -> None:
        self.total = Decimal(0)

    def step(self, value: Any) -> None:
        if isinstance(value, int):
            self.total = _EXACT.add(self.total, Decimal(value))
        elif isinstance(value, float):
            self.total = _EXACT.add(self.total, Decimal(repr(value)))

    def finalize(self) -> str:
        return str(self.total)


def _decimal_cmp(total: Any, target: Any, times: Any) -> int | None:
    """SQLite `gl_decimal_cmp(sum_text, target_text, n)`: the sign of sum - target * n."""
    if total is None or target is None or times is None:
        return None
    difference = _EXACT.subtract(Decimal(total), _EXACT.multiply(Decimal(target), Decimal(times)))
    return (difference > 0) - (difference < 0)


# Wide enough that sums of 64-bit integers and shortest-form doubles stay exact.
_EXACT = Context(prec=1000, Emax=MAX_EMAX, Emin=MIN_EMIN)


def register_exact_decimals(dbapi_connection: Any) -> None:
    dbapi_connection.create_aggregate("gl_exact_sum", 1, _ExactSum)
    dbapi_connection.create_function("gl_decimal_cmp", 3, _decimal_cmp, deterministic=True)
