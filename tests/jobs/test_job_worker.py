"""The handler registry and the worker loop."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from guestlist.jobs.queue import enqueue
from guestlist.jobs.registry import (
    UnknownJobKind,
    get_handler,
    job_handler,
    register,
    registered_kinds,
    unregister,
)
from guestlist.jobs.worker import Worker, default_worker_id
from guestlist.store.tables import jobs

HERE = Path(__file__).parent


@pytest.fixture
def calls() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Handlers `test.record` and `test.explode`, and what they were called with."""
    seen: list[tuple[str, dict[str, Any]]] = []

    @job_handler("test.record")
    def record(engine: Engine, args: dict[str, Any]) -> None:
        seen.append(("test.record", args))

    @job_handler("test.explode")
    def explode(engine: Engine, args: dict[str, Any]) -> None:
        seen.append(("test.explode", args))
        raise ValueError(f"cannot handle {args['n']}")

    yield seen
    unregister("test.record")
    unregister("test.explode")


def add(engine: Engine, kind: str, args: dict[str, Any] | None = None, **kw: Any) -> int:
    with engine.begin() as conn:
        job_id = enqueue(conn, kind, args or {}, **kw)
    assert job_id is not None
    return job_id


def job_row(engine: Engine, job_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(jobs).where(jobs.c.id == job_id)).one()


def test_registry_rejects_a_second_handler_for_a_kind() -> None:
    def first(engine: Engine, args: dict[str, Any]) -> None: ...

    def second(engine: Engine, args: dict[str, Any]) -> None: ...

    register("test.twice", first)
    try:
        register("test.twice", first)  # the same function again is fine
        assert get_handler("test.twice") is first
        assert "test.twice" in registered_kinds()
        with pytest.raises(ValueError, match="already has handler"):
            register("test.twice", second)
    finally:
        unregister("test.twice")
    with pytest.raises(UnknownJobKind, match=r"'test\.twice'"):
        get_handler("test.twice")


def test_default_worker_id_is_host_pid_random() -> None:
    host, pid, token = default_worker_id().rsplit(":", 2)
    assert host and int(pid) > 0 and len(token) == 8
    assert default_worker_id() != default_worker_id()


def test_worker_runs_a_registered_handler(
    engine: Engine, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    job_id = add(engine, "test.record", {"profile_id": 7})
    worker = Worker(engine, worker_id="w1")

    assert worker.run_once() == 1
    assert calls == [("test.record", {"profile_id": 7})]
    row = job_row(engine, job_id)
    assert (row.status, row.locked_by, row.attempts) == ("done", "w1", 0)
    assert worker.run_once() == 0


def test_a_failing_handler_leaves_its_error_on_the_job(
    engine: Engine, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    job_id = add(engine, "test.explode", {"n": 3})
    assert Worker(engine).run_once() == 1
    row = job_row(engine, job_id)
    assert (row.status, row.attempts) == ("queued", 1)
    assert "Traceback" in row.last_error
    assert "ValueError: cannot handle 3" in row.last_error


def test_an_unknown_kind_fails_visibly(engine: Engine) -> None:
    job_id = add(engine, "test.nobody_handles_this", max_attempts=1)
    assert Worker(engine).run_once() == 1
    row = job_row(engine, job_id)
    assert row.status == "dead"
    assert row.last_error.startswith("UnknownJobKind: no handler is registered for job kind")
    assert "'test.nobody_handles_this'" in row.last_error


def test_run_once_drains_an_inbox_batch_first(
    engine: Engine, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    order: list[str] = []

    def process_inbox(eng: Engine, batch_size: int) -> int:
        assert eng is engine
        order.append(f"inbox {batch_size}")
        return 5

    add(engine, "test.record")
    worker = Worker(engine, process_inbox=process_inbox, batch_size=50)
    assert worker.run_once() == 6
    assert order == ["inbox 50"] and len(calls) == 1


def test_inbox_errors_are_logged_and_jobs_still_run(
    engine: Engine, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    def broken_inbox(eng: Engine, batch_size: int) -> int:
        raise RuntimeError("parser bug")

    add(engine, "test.record")
    worker = Worker(engine, process_inbox=broken_inbox)
    assert worker.run_once() == 1
    assert worker.run_once() == 0
    assert len(calls) == 1


def test_worker_thread_runs_jobs_until_stopped(
    engine: Engine, calls: list[tuple[str, dict[str, Any]]]
) -> None:
    ran = threading.Event()
    inbox_failed = threading.Event()
    inbox_rounds = 0

    def process_inbox(eng: Engine, batch_size: int) -> int:
        nonlocal inbox_rounds
        inbox_rounds += 1
        if inbox_rounds == 2:
            inbox_failed.set()
            raise RuntimeError("a bad envelope does not stop the loop")
        return 0

    @job_handler("test.signal")
    def signal_ran(engine: Engine, args: dict[str, Any]) -> None:
        ran.set()

    try:
        thread, stop = Worker(
            engine, process_inbox=process_inbox, poll_seconds=0.01
        ).start_in_thread()
        assert inbox_failed.wait(10)
        job_id = add(engine, "test.signal")
        assert ran.wait(10)
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        unregister("test.signal")
    assert inbox_rounds >= 2  # the job was enqueued after the failing round
    assert job_row(engine, job_id).status == "done"


def test_stopping_hands_back_claimed_jobs_not_yet_started(engine: Engine) -> None:
    stop_holder: list[threading.Event] = []
    started = threading.Event()

    @job_handler("test.stop_now")
    def stop_now(engine: Engine, args: dict[str, Any]) -> None:
        started.wait(10)
        stop_holder[0].set()

    try:
        ids = [add(engine, "test.stop_now") for _ in range(3)]
        thread, stop = Worker(engine, worker_id="w1", job_batch=3).start_in_thread()
        stop_holder.append(stop)
        started.set()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        unregister("test.stop_now")
    rows = [job_row(engine, job_id) for job_id in ids]
    assert [(r.status, r.locked_by, r.attempts) for r in rows] == [
        ("done", "w1", 0),
        ("queued", None, 0),
        ("queued", None, 0),
    ]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_lets_the_current_job_finish_then_the_worker_exits(
    engine: Engine, db_url: str, signum: signal.Signals
) -> None:
    first = add(engine, "test.signal_self", {"signum": int(signum)})
    second = add(engine, "test.signal_self", {"signum": int(signum)})
    result = subprocess.run(
        [sys.executable, str(HERE / "worker_process.py"), db_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "worker.stopping" in result.stdout + result.stderr
    assert job_row(engine, first).status == "done"
    row = job_row(engine, second)
    assert (row.status, row.locked_by, row.attempts) == ("queued", None, 0)
