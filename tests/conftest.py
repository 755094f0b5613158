"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL tests use a database created for this run and dropped after it, so runs
never see each other's data. Where PostgreSQL is missing they skip, except in CI
(`CI=true`), where they fail.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from guestlist.store.engine import make_engine
from guestlist.store.migrate import upgrade
from guestlist.store.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "GUESTLIST_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", "postgresql"]

# Under pytest-xdist, `make test` hands out whole files (`--dist loadfile`) in collection
# order (`--no-loadscope-reorder`). These files take longest, by far the first of them
# (~half the suite); handed out first, no worker is left running one alone at the end.
LONGEST_FIRST = (
    "tests/segments/test_compile_differential.py",
    "tests/test_crash_recovery.py",
    "tests/test_guard.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # a run without xdist keeps its usual order
        return
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any connection failure means "not here"
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One migrated database per backend for the whole run."""
    urls: dict[str, str] = {}
    sqlite_file = tmp_path_factory.mktemp("db") / "guestlist.db"
    urls["sqlite"] = f"sqlite:///{sqlite_file}"
    upgrade(urls["sqlite"])

    pg_error = _pg_available()
    created: str | None = None
    if pg_error is None:
        created = f"guestlist_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{created}"'))
        urls["postgresql"] = make_url(PG_ADMIN_URL).set(database=created).render_as_string(
            hide_password=False
        )
        upgrade(urls["postgresql"])
    else:
        urls["postgresql_error"] = pg_error
    yield urls
    if created:
        from guestlist.store import engine as engine_module

        for url, eng in list(engine_module._engines.items()):
            if created in url:
                eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))
        admin.dispose()


def backend_url(database_urls: dict[str, str], backend: str) -> str:
    if backend not in database_urls:
        reason = f"PostgreSQL is not reachable: {database_urls.get('postgresql_error')}"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    return database_urls[backend]


def wipe(engine: Engine) -> None:
    tables = list(reversed(metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(table.delete())


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, database_urls: dict[str, str]) -> Iterator[str]:
    """URL of an empty, migrated database; the test is run once per backend."""
    url = backend_url(database_urls, request.param)
    engine = make_engine(url)
    wipe(engine)
    engine.dispose()
    yield url


@pytest.fixture
def engine(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    from guestlist.settings import get_settings

    monkeypatch.setenv("GUESTLIST_DATABASE_URL", db_url)
    get_settings.cache_clear()
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
    get_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listens_on(pid: int, port: int) -> bool | None:
    """Whether process `pid` holds the socket listening on 127.0.0.1:`port` (Linux's
    /proc); None where that cannot be told."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        table = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    inodes = set()
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    for line in table:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
            return True
    return False


class LiveServer:
    """`guestlist serve` in a subprocess, on a free port.

    Other test processes (pytest-xdist workers, other runs) pick free ports too, so the
    port may be taken between `free_port` and the server binding it: then the server
    exits and `start` tries again on another port. Health is only asked once the port is
    known to be this server's own, never another process's server on the same port.
    """

    ATTEMPTS = 5

    def __init__(self, db_url: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.extra = extra
        self.env = {**os.environ, "GUESTLIST_DATABASE_URL": db_url, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self._on(free_port())

    def _on(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable, "-m", "guestlist.cli", "serve",
            "--host", "127.0.0.1", "--port", str(self.port), *self.extra,
        ]

    def start(self) -> LiveServer:
        for attempt in range(self.ATTEMPTS):
            if attempt:
                self._on(free_port())
            process = self.process = subprocess.Popen(self.args, env=self.env)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break  # most likely the port was taken meanwhile: another port
                if _listens_on(process.pid, self.port) is False:
                    time.sleep(0.1)
                    continue
                try:
                    if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                self.stop()
                raise RuntimeError("server did not start in 30 s")
        raise RuntimeError(
            f"server exited with {process.returncode} on each of {self.ATTEMPTS} ports"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def live_server_factory(db_url: str) -> Iterator[type[LiveServer]]:
    started: list[LiveServer] = []

    class _Factory(LiveServer):
        def __init__(self, *extra: str, env: dict[str, str] | None = None) -> None:
            super().__init__(db_url, *extra, env=env)
            started.append(self)

    yield _Factory
    for server in started:
        server.stop()


ROOT = Path(__file__).resolve().parent.parent
