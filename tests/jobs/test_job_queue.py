"""The job queue on SQLite and PostgreSQL: enqueue, claim, complete, fail, recover."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, select, update

from guestlist.jobs.queue import (
    BACKOFF_CAP,
    ClaimedJob,
    claim,
    complete,
    enqueue,
    fail,
    heartbeat,
    recover_stale,
    release,
    retry_dead,
    retry_delay,
)
from guestlist.store.tables import jobs

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def add(engine: Engine, kind: str = "test.noop", **kwargs: Any) -> int | None:
    kwargs.setdefault("now", T0)
    with engine.begin() as conn:
        return enqueue(conn, kind, kwargs.pop("args", {}), **kwargs)


def job_row(engine: Engine, job_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(jobs).where(jobs.c.id == job_id)).one()


def ceiling(attempts: int) -> float:
    return min(BACKOFF_CAP.total_seconds(), 2.0 * 2 ** (attempts - 1))


def test_enqueue_claim_complete(engine: Engine) -> None:
    job_id = add(engine, "test.greet", args={"name": "Ada", "tags": [1, 2]})
    assert job_id is not None

    [job] = claim(engine, "w1", now=T0)
    assert job == ClaimedJob(
        id=job_id,
        kind="test.greet",
        args={"name": "Ada", "tags": [1, 2]},
        unique_key=None,
        run_at=T0,
        attempts=0,
        max_attempts=10,
        locked_by="w1",
        locked_at=T0,
    )
    assert job_row(engine, job_id).status == "running"
    assert claim(engine, "w2", now=T0) == []

    assert complete(engine, job_id, locked_by="w1", now=T0 + timedelta(seconds=1))
    row = job_row(engine, job_id)
    assert (row.status, row.finished_at, row.attempts) == ("done", T0 + timedelta(seconds=1), 0)
    assert claim(engine, "w2", now=T0 + timedelta(days=1)) == []
    assert not complete(engine, job_id)  # already done


def test_claim_takes_oldest_due_first_up_to_limit(engine: Engine) -> None:
    late = add(engine, run_at=T0 - timedelta(seconds=1))
    early = add(engine, run_at=T0 - timedelta(seconds=5))
    same_a = add(engine, run_at=T0 - timedelta(seconds=3))
    same_b = add(engine, run_at=T0 - timedelta(seconds=3))

    first = claim(engine, "w1", limit=3, now=T0)
    assert [job.id for job in first] == [early, same_a, same_b]
    assert [job.id for job in claim(engine, "w1", limit=3, now=T0)] == [late]
    assert claim(engine, "w1", limit=0, now=T0) == []


def test_claim_filters_by_kind(engine: Engine) -> None:
    sync = add(engine, "sync.run")
    pull = add(engine, "pull.run")
    assert claim(engine, "w1", kinds=[], now=T0) == []
    assert [job.id for job in claim(engine, "w1", kinds=["pull.run"], now=T0)] == [pull]
    assert [job.id for job in claim(engine, "w1", kinds=["sync.run", "x"], now=T0)] == [sync]


def test_enqueue_joins_the_callers_transaction(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        enqueue(conn, "test.noop", {}, unique_key="k", now=T0)
        raise RuntimeError("roll back")
    assert claim(engine, "w1", now=T0) == []
    assert add(engine, unique_key="k") is not None


def test_unique_key_blocks_a_second_live_job_until_it_finishes(engine: Engine) -> None:
    first = add(engine, unique_key="sync:42", args={"n": 1})
    assert first is not None
    assert add(engine, unique_key="sync:42", args={"n": 2}) is None  # queued holds it
    assert add(engine, unique_key="sync:43") is not None  # another key is free
    assert add(engine) is not None and add(engine) is not None  # no key never conflicts

    [job] = claim(engine, "w1", kinds=["test.noop"], limit=1, now=T0)
    assert job.id == first and job.unique_key == "sync:42"
    assert add(engine, unique_key="sync:42") is None  # running holds it

    complete(engine, first)
    second = add(engine, unique_key="sync:42")
    assert second is not None and second != first

    # A dead job releases its key too.
    with engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == second).values(status="dead"))
    assert add(engine, unique_key="sync:42") is not None


def test_future_run_at_is_not_claimed_until_due(engine: Engine) -> None:
    job_id = add(engine, run_at=T0 + timedelta(minutes=10))
    assert claim(engine, "w1", now=T0) == []
    assert claim(engine, "w1", now=T0 + timedelta(minutes=9, seconds=59)) == []
    assert [job.id for job in claim(engine, "w1", now=T0 + timedelta(minutes=10))] == [job_id]


@given(attempts=st.integers(min_value=1, max_value=200), seed=st.integers(0, 2**32))
def test_retry_delay_is_equal_jitter_exponential_backoff(attempts: int, seed: int) -> None:
    delay = retry_delay(attempts, rng=random.Random(seed)).total_seconds()
    assert ceiling(attempts) / 2 <= delay <= ceiling(attempts)


def test_retry_delay_reaches_the_cap() -> None:
    assert ceiling(12) == 3600
    assert retry_delay(1000, rng=random.Random(1)) <= BACKOFF_CAP
    with pytest.raises(ValueError):
        retry_delay(0)


def test_failures_back_off_then_the_job_dies_with_its_last_error(engine: Engine) -> None:
    job_id = add(engine, max_attempts=4)
    assert job_id is not None
    now = T0
    delays = []
    for attempt in range(1, 4):
        [job] = claim(engine, "w1", now=now)
        assert job.attempts == attempt - 1
        assert fail(engine, job, f"boom {attempt}", now=now) == "queued"
        row = job_row(engine, job_id)
        assert (row.status, row.attempts, row.last_error) == ("queued", attempt, f"boom {attempt}")
        assert row.locked_by is None and row.locked_at is None
        delay = (row.run_at - now).total_seconds()
        assert ceiling(attempt) / 2 <= delay <= ceiling(attempt)
        delays.append(delay)
        assert claim(engine, "w1", now=row.run_at - timedelta(microseconds=1)) == []
        now = row.run_at
    assert delays == sorted(delays)

    [job] = claim(engine, "w1", now=now)
    assert fail(engine, job, "boom 4", now=now) == "dead"
    row = job_row(engine, job_id)
    assert (row.status, row.attempts, row.last_error) == ("dead", 4, "boom 4")
    assert row.finished_at == now
    assert claim(engine, "w1", now=now + timedelta(days=30)) == []


def test_retry_dead_requeues_a_dead_job(engine: Engine) -> None:
    job_id = add(engine, max_attempts=1, unique_key="pull:7")
    assert job_id is not None
    [job] = claim(engine, "w1", now=T0)
    assert not retry_dead(engine, job_id)  # running, not dead
    assert fail(engine, job, "bad token", now=T0) == "dead"

    later = T0 + timedelta(hours=2)
    assert retry_dead(engine, job_id, now=later)
    row = job_row(engine, job_id)
    assert (row.status, row.attempts, row.run_at) == ("queued", 0, later)
    assert row.finished_at is None
    assert row.last_error == "bad token"  # kept until the next failure
    assert not retry_dead(engine, job_id)  # no longer dead
    assert not retry_dead(engine, 999_999)
    [again] = claim(engine, "w1", now=later)
    assert again.id == job_id
    complete(engine, job_id)


def test_retry_dead_refuses_when_a_live_job_holds_the_key(engine: Engine) -> None:
    dead_id = add(engine, max_attempts=1, unique_key="pull:7")
    assert dead_id is not None
    [job] = claim(engine, "w1", now=T0)
    fail(engine, job, "bad token", now=T0)
    live_id = add(engine, unique_key="pull:7")
    assert live_id is not None

    assert not retry_dead(engine, dead_id)
    assert job_row(engine, dead_id).status == "dead"


def test_recover_stale_requeues_jobs_of_a_dead_worker(engine: Engine) -> None:
    job_id = add(engine, max_attempts=2)
    other = add(engine)
    assert job_id is not None and other is not None
    claim(engine, "crashed", limit=1, now=T0)
    claim(engine, "alive", limit=1, now=T0)
    assert heartbeat(engine, "alive", now=T0 + timedelta(minutes=4)) == 1

    stale = timedelta(minutes=5)
    assert recover_stale(engine, stale, now=T0 + timedelta(minutes=4)) == 0
    assert recover_stale(engine, stale, now=T0 + timedelta(minutes=6)) == 1
    row = job_row(engine, job_id)
    assert (row.status, row.attempts, row.locked_by) == ("queued", 1, None)
    assert "'crashed' stopped responding" in row.last_error
    assert row.run_at > T0 + timedelta(minutes=6)
    assert job_row(engine, other).status == "running"  # its worker is alive

    # A job that keeps taking its worker down dies instead of looping.
    [job] = claim(engine, "crashed-again", now=row.run_at)
    assert job.id == job_id
    assert recover_stale(engine, stale, now=row.run_at + timedelta(minutes=6)) == 2
    assert job_row(engine, job_id).status == "dead"


def test_a_worker_that_lost_its_job_cannot_finish_or_fail_it(engine: Engine) -> None:
    job_id = add(engine)
    assert job_id is not None
    [old] = claim(engine, "slow", now=T0)
    recover_stale(engine, timedelta(minutes=5), now=T0 + timedelta(minutes=6))
    [new] = claim(engine, "fresh", now=T0 + timedelta(hours=1))
    assert new.attempts == 1

    assert fail(engine, old, "late failure") is None
    assert not complete(engine, job_id, locked_by="slow")
    assert not release(engine, old)
    assert job_row(engine, job_id).locked_by == "fresh"
    assert complete(engine, job_id, locked_by="fresh")


def test_release_hands_an_unstarted_job_back(engine: Engine) -> None:
    job_id = add(engine)
    [job] = claim(engine, "w1", now=T0)
    assert release(engine, job)
    row = job_row(engine, job_id)
    assert (row.status, row.attempts, row.locked_by, row.run_at) == ("queued", 0, None, T0)
    assert [again.id for again in claim(engine, "w2", now=T0)] == [job_id]
