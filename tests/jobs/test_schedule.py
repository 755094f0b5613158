"""Recurring jobs on SQLite and PostgreSQL: one job per kind and period, however many
workers ask, and none again once the period's job is done."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from guestlist.jobs.queue import claim, complete
from guestlist.jobs.registry import job_handler, unregister
from guestlist.jobs.schedule import (
    enqueue_due,
    recurring,
    recurring_kinds,
    register_recurring,
    slot_start,
    unique_key,
    unregister_recurring,
)
from guestlist.jobs.worker import Worker
from guestlist.store.engine import make_engine
from guestlist.store.tables import jobs

KIND = "test.hourly"
HOUR = timedelta(hours=1)
T0 = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
SLOT = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def hourly() -> Iterator[str]:
    register_recurring(KIND, HOUR)
    yield KIND
    unregister_recurring(KIND)


def jobs_of(engine: Engine, kind: str = KIND) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.id)))


def test_slots_start_at_the_epoch_in_utc() -> None:
    assert slot_start(T0, HOUR) == SLOT
    assert slot_start(T0, timedelta(days=1)) == datetime(2026, 3, 2, tzinfo=UTC)
    assert slot_start(SLOT, HOUR) == SLOT  # a slot's first instant is in it
    assert slot_start(SLOT - timedelta(microseconds=1), HOUR) == SLOT - HOUR
    with pytest.raises(ValueError, match="aware"):
        slot_start(T0.replace(tzinfo=None), HOUR)


def test_registering_a_kind_twice_with_another_period_is_an_error(hourly: str) -> None:
    register_recurring(KIND, HOUR)  # the same again (a module imported twice) is fine
    with pytest.raises(ValueError, match="already runs every 1:00:00"):
        register_recurring(KIND, timedelta(hours=2))
    with pytest.raises(ValueError, match="positive"):
        register_recurring("test.never", timedelta(0))
    assert recurring_kinds()[KIND] == HOUR


def test_the_decorator_registers_beside_the_handler() -> None:
    @recurring("test.decorated", every=timedelta(minutes=5))
    @job_handler("test.decorated")
    def handler(engine: Engine, args: dict[str, Any]) -> None: ...

    try:
        assert recurring_kinds()["test.decorated"] == timedelta(minutes=5)
    finally:
        unregister_recurring("test.decorated")
        unregister("test.decorated")


def test_two_workers_in_one_period_enqueue_one_job(
    engine: Engine, db_url: str, hourly: str
) -> None:
    other = make_engine(db_url)  # a second worker's engine
    try:
        first = [j for j in enqueue_due(engine, T0) if j.kind == KIND]
        second = [j for j in enqueue_due(other, T0 + timedelta(minutes=1)) if j.kind == KIND]
    finally:
        other.dispose()
    assert len(first) == 1 and second == []
    [job] = jobs_of(engine)
    assert (job.id, job.run_at, job.unique_key, job.args) == (
        first[0].job_id,
        SLOT,
        unique_key(KIND, SLOT),
        {"slot": SLOT.isoformat()},
    )
    assert job.unique_key == f"{KIND}@2026-03-02T15:00:00+00:00"


def test_a_finished_job_is_not_enqueued_again_in_its_period(engine: Engine, hourly: str) -> None:
    """The queue's unique key binds live jobs only; the schedule row remembers the slot."""
    enqueue_due(engine, T0)
    [claimed] = [j for j in claim(engine, "w1", limit=100, now=T0) if j.kind == KIND]
    assert complete(engine, claimed.id, now=T0)
    assert [j for j in enqueue_due(engine, T0 + timedelta(minutes=29)) if j.kind == KIND] == []
    assert [row.status for row in jobs_of(engine)] == ["done"]


def test_the_next_period_enqueues_the_next_job(engine: Engine, hourly: str) -> None:
    enqueue_due(engine, T0)
    [scheduled] = [j for j in enqueue_due(engine, SLOT + HOUR) if j.kind == KIND]
    assert scheduled.slot == SLOT + HOUR
    assert [(r.run_at, r.unique_key) for r in jobs_of(engine)] == [
        (SLOT, unique_key(KIND, SLOT)),
        (SLOT + HOUR, unique_key(KIND, SLOT + HOUR)),
    ]
    # A clock running behind (another host) does not go back to the older slot.
    assert [j for j in enqueue_due(engine, T0) if j.kind == KIND] == []
    assert len(jobs_of(engine)) == 2


def test_missed_periods_are_not_caught_up(engine: Engine, hourly: str) -> None:
    enqueue_due(engine, T0)
    enqueue_due(engine, T0 + timedelta(days=3))  # the workers were down for three days
    assert [r.run_at for r in jobs_of(engine)] == [SLOT, SLOT + timedelta(days=3)]


def test_many_workers_at_once_enqueue_one_job(engine: Engine, db_url: str, hourly: str) -> None:
    engines = [engine, make_engine(db_url)]
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def race(index: int) -> None:
        try:
            barrier.wait(10)
            enqueue_due(engines[index % 2], T0)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    engines[1].dispose()
    assert errors == []
    assert len(jobs_of(engine)) == 1


def test_in_the_callers_transaction(engine: Engine, hourly: str) -> None:
    with engine.connect() as conn:
        enqueue_due(conn, T0)
        conn.rollback()
    assert jobs_of(engine) == []
    with engine.begin() as conn:
        enqueue_due(conn, T0)
    assert len(jobs_of(engine)) == 1


def test_the_worker_enqueues_recurring_jobs_when_it_starts(engine: Engine, hourly: str) -> None:
    ran = threading.Event()

    @job_handler(KIND)
    def tick(engine: Engine, args: dict[str, Any]) -> None:
        ran.set()

    try:
        thread, stop = Worker(engine, kinds=[KIND], poll_seconds=0.01).start_in_thread()
        assert ran.wait(10)
        stop.set()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        unregister(KIND)
    [row] = jobs_of(engine)
    assert row.status == "done" and row.unique_key.startswith(f"{KIND}@")


def test_a_worker_can_leave_scheduling_to_others(engine: Engine, hourly: str) -> None:
    worker = Worker(engine, kinds=[KIND], poll_seconds=0.01, schedule_every=None)
    thread, stop = worker.start_in_thread()
    stop.wait(0.05)
    stop.set()
    thread.join(10)
    assert jobs_of(engine) == []
