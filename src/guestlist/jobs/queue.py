"""The job queue: enqueue, claim, complete, fail, recover — all in the `jobs` table.

A job's life:

```
enqueue ─► queued ──claim──► running ──complete──► done
             ▲                  │
             │   fail (retries  │  fail after max_attempts,
             └── left) or stale ┘  or stale after max_attempts ──► dead ──retry_dead──► queued
                 recovery
```

Claiming is safe with many workers on one database. On PostgreSQL the due rows are
selected `FOR UPDATE SKIP LOCKED`, so concurrent claimers lock disjoint rows and never
wait for each other. On SQLite every transaction starts with `BEGIN IMMEDIATE` (see
`guestlist.store.engine`), so claimers run one after another and a plain SELECT then
UPDATE cannot race.

Times come from the Python clock (every function takes `now=` so tests can pin it), so
workers on several hosts need reasonably synchronised clocks.

`attempts` counts failed runs: `fail` and stale recovery add one; a job that has failed
`max_attempts` times is `dead` and keeps its `last_error` until `retry_dead`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy import Connection, Engine, Insert, Row, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from guestlist.store.tables import jobs
from guestlist.store.types import utcnow

log = structlog.get_logger(__name__)

JobStatus = Literal["queued", "running", "done", "dead"]
LIVE_STATUSES: tuple[JobStatus, ...] = ("queued", "running")

# Must match the predicate of the partial unique index `uq_jobs_live_unique_key`, so
# that PostgreSQL and SQLite accept it as the ON CONFLICT arbiter.
_LIVE_PREDICATE = "status IN ('queued', 'running')"

BACKOFF_BASE = timedelta(seconds=2)
BACKOFF_CAP = timedelta(hours=1)
MAX_ERROR_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker holds: it is `running` and `locked_by` names the worker."""

    id: int
    kind: str
    args: dict[str, Any]
    unique_key: str | None
    run_at: datetime
    #: Failed runs before this one (so this is run number `attempts + 1`).
    attempts: int
    max_attempts: int
    locked_by: str
    locked_at: datetime


def _dialect_insert(conn: Connection) -> Insert:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(jobs)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(jobs)
    raise NotImplementedError(f"jobs are not supported on {conn.dialect.name}")


def enqueue(
    conn: Connection,
    kind: str,
    args: dict[str, Any],
    *,
    unique_key: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int = 10,
    now: datetime | None = None,
) -> int | None:
    """Add a job inside the caller's transaction; return its id.

    With `unique_key`, at most one live (queued or running) job holds the key: when
    one already does, nothing is added and None is returned. A finished (done or dead)
    job no longer holds its key.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    now = now or utcnow()
    stmt = _dialect_insert(conn).values(
        kind=kind,
        args=args,
        unique_key=unique_key,
        status="queued",
        run_at=run_at or now,
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
    )
    if unique_key is not None:
        # Dialect inserts both have on_conflict_do_nothing(index_elements, index_where).
        stmt = stmt.on_conflict_do_nothing(  # type: ignore[attr-defined]
            index_elements=[jobs.c.unique_key], index_where=text(_LIVE_PREDICATE)
        )
    job_id = conn.execute(stmt.returning(jobs.c.id)).scalar_one_or_none()
    return None if job_id is None else int(job_id)


def _claimed(row: Row[Any]) -> ClaimedJob:
    return ClaimedJob(
        id=int(row.id),
        kind=row.kind,
        args=dict(row.args),
        unique_key=row.unique_key,
        run_at=row.run_at,
        attempts=int(row.attempts),
        max_attempts=int(row.max_attempts),
        locked_by=row.locked_by,
        locked_at=row.locked_at,
    )


def claim(
    engine: Engine,
    worker_id: str,
    limit: int = 10,
    kinds: Sequence[str] | None = None,
    *,
    now: datetime | None = None,
) -> list[ClaimedJob]:
    """Take up to `limit` due queued jobs for `worker_id`, oldest `run_at` first.

    The taken jobs are `running`, locked by `worker_id` at `now`, when this returns.
    No two claimers ever receive the same job.
    """
    if limit < 1:
        return []
    now = now or utcnow()
    query = (
        select(jobs.c.id)
        .where(jobs.c.status == "queued", jobs.c.run_at <= now)
        .order_by(jobs.c.run_at, jobs.c.id)
        .limit(limit)
        # Compiles to FOR UPDATE SKIP LOCKED on PostgreSQL and to nothing on SQLite,
        # whose BEGIN IMMEDIATE already serialises this transaction.
        .with_for_update(skip_locked=True)
    )
    if kinds is not None:
        if not kinds:
            return []
        query = query.where(jobs.c.kind.in_(list(kinds)))
    with engine.begin() as conn:
        ids = list(conn.execute(query).scalars())
        if not ids:
            return []
        rows = conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(ids))
            .values(status="running", locked_by=worker_id, locked_at=now)
            .returning(*jobs.c)
        ).all()
    claimed = sorted((_claimed(row) for row in rows), key=lambda job: (job.run_at, job.id))
    return claimed


def complete(
    engine: Engine,
    job_id: int,
    *,
    locked_by: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Mark a running job done; True when it was.

    Pass `locked_by` (the worker's id) so that a worker whose job was meanwhile
    recovered as stale and given to another worker does not finish that one's run.
    """
    conditions = [jobs.c.id == job_id, jobs.c.status == "running"]
    if locked_by is not None:
        conditions.append(jobs.c.locked_by == locked_by)
    with engine.begin() as conn:
        result = conn.execute(
            update(jobs)
            .where(*conditions)
            .values(status="done", finished_at=now or utcnow(), locked_at=None)
        )
    if result.rowcount != 1:
        log.warning("job.complete_lost", job_id=job_id, locked_by=locked_by)
        return False
    return True


def retry_delay(
    attempts: int,
    *,
    base: timedelta = BACKOFF_BASE,
    cap: timedelta = BACKOFF_CAP,
    rng: random.Random | None = None,
) -> timedelta:
    """How long to wait before the next run after `attempts` failed runs.

    Exponential backoff with *equal jitter*: the ceiling is `base * 2 ** (attempts - 1)`
    capped at `cap` (2 s, 4 s, 8 s, … 1 h), and the delay is drawn uniformly from
    `[ceiling / 2, ceiling]`. Half of the ceiling is guaranteed, so the wait grows with
    every failure, while the random half spreads out jobs that failed together (say,
    when a destination went down) instead of retrying them in one burst.
    """
    if attempts < 1:
        raise ValueError("attempts counts failures and starts at 1")
    # Clamp the exponent so the arithmetic stays small long after the cap is reached.
    exponent = min(attempts - 1, 32)
    ceiling = min(cap.total_seconds(), base.total_seconds() * 2**exponent)
    half = ceiling / 2
    return timedelta(seconds=half + (rng or random).uniform(0, half))


def _failure_values(
    attempts: int, max_attempts: int, error: str, now: datetime, rng: random.Random | None
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_error": error[:MAX_ERROR_CHARS],
        "locked_by": None,
        "locked_at": None,
    }
    if attempts >= max_attempts:
        values.update(status="dead", finished_at=now)
    else:
        values.update(status="queued", run_at=now + retry_delay(attempts, rng=rng))
    return values


def fail(
    engine: Engine,
    job: ClaimedJob,
    error: str,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> JobStatus | None:
    """Record a failed run of `job`; return its new status.

    The job goes back to `queued` with `run_at` pushed out by `retry_delay`, or, if
    this was its `max_attempts`-th failure, becomes `dead`. Either way `last_error`
    keeps `error`. Returns None (and changes nothing) when the job is no longer held by
    `job.locked_by` in this run, e.g. because it was recovered as stale meanwhile.
    """
    now = now or utcnow()
    attempts = job.attempts + 1
    values = _failure_values(attempts, job.max_attempts, error, now, rng)
    with engine.begin() as conn:
        result = conn.execute(
            update(jobs)
            .where(
                jobs.c.id == job.id,
                jobs.c.status == "running",
                jobs.c.locked_by == job.locked_by,
                # attempts is a fencing token: stale recovery bumps it.
                jobs.c.attempts == job.attempts,
            )
            .values(**values)
        )
    if result.rowcount != 1:
        log.warning("job.fail_lost", job_id=job.id, kind=job.kind, locked_by=job.locked_by)
        return None
    status: JobStatus = values["status"]
    return status


def release(engine: Engine, job: ClaimedJob) -> bool:
    """Hand a claimed job that was never started back to the queue, unchanged."""
    with engine.begin() as conn:
        result = conn.execute(
            update(jobs)
            .where(
                jobs.c.id == job.id,
                jobs.c.status == "running",
                jobs.c.locked_by == job.locked_by,
                jobs.c.attempts == job.attempts,
            )
            .values(status="queued", locked_by=None, locked_at=None)
        )
    return result.rowcount == 1


def heartbeat(engine: Engine, worker_id: str, *, now: datetime | None = None) -> int:
    """Refresh `locked_at` of every job `worker_id` holds, so none looks stale."""
    with engine.begin() as conn:
        result = conn.execute(
            update(jobs)
            .where(jobs.c.status == "running", jobs.c.locked_by == worker_id)
            .values(locked_at=now or utcnow())
        )
    return int(result.rowcount)


def recover_stale(
    engine: Engine,
    older_than: timedelta,
    *,
    now: datetime | None = None,
    rng: random.Random | None = None,
) -> int:
    """Requeue running jobs whose worker has not been heard of for `older_than`.

    A worker that died mid-job leaves it `running`. Such a run counts as a failed
    attempt (with backoff), so a job that keeps killing its worker ends up `dead`
    instead of looping. Returns how many jobs were recovered.
    """
    now = now or utcnow()
    cutoff = now - older_than
    query = (
        select(jobs.c.id, jobs.c.attempts, jobs.c.max_attempts, jobs.c.locked_by)
        .where(jobs.c.status == "running", jobs.c.locked_at < cutoff)
        .order_by(jobs.c.id)
        .with_for_update(skip_locked=True)
    )
    with engine.begin() as conn:
        rows = conn.execute(query).all()
        for row in rows:
            error = (
                f"worker {row.locked_by!r} stopped responding: its lease on this job "
                f"expired (no heartbeat for {older_than})"
            )
            conn.execute(
                update(jobs)
                .where(jobs.c.id == row.id)
                .values(**_failure_values(row.attempts + 1, row.max_attempts, error, now, rng))
            )
    for row in rows:
        log.warning("job.recovered_stale", job_id=row.id, locked_by=row.locked_by)
    return len(rows)


def retry_dead(engine: Engine, job_id: int, *, now: datetime | None = None) -> bool:
    """Queue a dead job again, due now, with its attempts reset; True when it was.

    False when there is no dead job with that id, or when another live job already
    holds the same unique key (that job will do the work). `last_error` is kept
    until the next failure replaces it.
    """
    now = now or utcnow()
    try:
        return _retry_dead(engine, job_id, now)
    except IntegrityError:
        # A job with the same unique key was enqueued between our check and update.
        return False


def _retry_dead(engine: Engine, job_id: int, now: datetime) -> bool:
    with engine.begin() as conn:
        row = conn.execute(
            select(jobs.c.unique_key)
            .where(jobs.c.id == job_id, jobs.c.status == "dead")
            .with_for_update()
        ).one_or_none()
        if row is None:
            return False
        if row.unique_key is not None:
            live = conn.execute(
                select(jobs.c.id).where(
                    jobs.c.unique_key == row.unique_key, jobs.c.status.in_(LIVE_STATUSES)
                )
            ).first()
            if live is not None:
                return False
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                status="queued",
                attempts=0,
                run_at=now,
                locked_by=None,
                locked_at=None,
                finished_at=None,
            )
        )
    return True
