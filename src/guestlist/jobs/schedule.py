"""Recurring jobs: kinds that run once per period, whichever worker enqueues them.

A module that defines periodic work registers it where it is written, beside its
handler:

```
@recurring("privacy.retention", every=timedelta(days=1))
@job_handler("privacy.retention")
def run_retention(engine: Engine, args: dict[str, Any]) -> None: ...
```

Periods are slots counted from the Unix epoch in UTC: a daily kind's slot starts at
00:00 UTC, an hourly one's on the hour. `enqueue_due` (which every worker calls when
it starts and then about once a minute) enqueues each registered kind once for the
slot `now` falls in, due at the slot's start, with the unique key `"{kind}@{slot}"`
and args `{"slot": "<ISO 8601>"}`.

Why a `job_schedule` row and not the unique key alone: the queue's unique key only
binds live (queued or running) jobs. A daily purge done in seconds would free its key,
and the next worker to call `enqueue_due` a minute later would queue it again. So each
kind has one row holding the last slot it was enqueued for, moved forward by an
upsert that only ever advances it (`… ON CONFLICT DO UPDATE … WHERE last_slot < new`):
of several workers calling at once exactly one sees its statement change the row, and
that worker enqueues, in the same transaction. The job still carries the unique key,
so it can be recognised in the queue, and a slot cannot be queued twice while its job
is live even if the row were lost.

Missed periods are not caught up: a worker back after three days enqueues the current
slot once, not three jobs. Handlers should therefore do "everything due by now" (as
the purges do), not "the work of this slot".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from guestlist.jobs.queue import enqueue
from guestlist.store.tables import job_schedule
from guestlist.store.types import utcnow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

F = TypeVar("F", bound=Callable[..., object])

_recurring: dict[str, timedelta] = {}


def register_recurring(kind: str, every: timedelta) -> None:
    """Run `kind` once every `every`; registering a kind again with another period
    is an error (two modules disagreeing about one kind)."""
    if every <= timedelta(0):
        raise ValueError(f"the period of {kind!r} must be positive, not {every}")
    existing = _recurring.get(kind)
    if existing is not None and existing != every:
        raise ValueError(f"recurring job {kind!r} already runs every {existing}")
    _recurring[kind] = every


def recurring(kind: str, every: timedelta) -> Callable[[F], F]:
    """Decorator: register `kind` (whose handler it decorates) as recurring."""

    def decorate(handler: F) -> F:
        register_recurring(kind, every)
        return handler

    return decorate


def unregister_recurring(kind: str) -> None:
    """Forget a recurring kind (for tests and plug-ins being unloaded)."""
    _recurring.pop(kind, None)


def recurring_kinds() -> dict[str, timedelta]:
    """Every registered recurring kind and its period."""
    return dict(_recurring)


def slot_start(now: datetime, every: timedelta) -> datetime:
    """The start of the period `now` falls in (slots counted from the epoch, UTC)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return EPOCH + ((now - EPOCH) // every) * every


def unique_key(kind: str, slot: datetime) -> str:
    return f"{kind}@{slot.astimezone(UTC).isoformat()}"


@dataclass(frozen=True, slots=True)
class ScheduledJob:
    """A recurring job this call enqueued (`job_id` None: its slot's job was live)."""

    kind: str
    slot: datetime
    job_id: int | None


def enqueue_due(target: Connection | Engine, now: datetime | None = None) -> list[ScheduledJob]:
    """Enqueue each recurring kind whose current slot has not been enqueued yet.

    With an Engine it runs in a transaction of its own; with a Connection, in the
    caller's. Safe to call from any number of workers at once: each slot of each kind
    is enqueued once. Costs one upsert per recurring kind.
    """
    now = now or utcnow()
    if isinstance(target, Engine):
        with target.begin() as conn:
            return _enqueue_due(conn, now)
    return _enqueue_due(target, now)


def _enqueue_due(conn: Connection, now: datetime) -> list[ScheduledJob]:
    scheduled = []
    for kind, every in sorted(_recurring.items()):
        slot = slot_start(now, every)
        if not _advance(conn, kind, slot, now):
            continue
        job_id = enqueue(
            conn,
            kind,
            {"slot": slot.isoformat()},
            unique_key=unique_key(kind, slot),
            run_at=slot,
            now=now,
        )
        scheduled.append(ScheduledJob(kind, slot, job_id))
    return scheduled


def _advance(conn: Connection, kind: str, slot: datetime, now: datetime) -> bool:
    """Move the kind's last slot forward to `slot`; True when this call did it."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(job_schedule).values(kind=kind, last_slot=slot, updated_at=now)
    upsert = stmt.on_conflict_do_update(
        index_elements=[job_schedule.c.kind],
        set_={"last_slot": stmt.excluded.last_slot, "updated_at": stmt.excluded.updated_at},
        # Only forwards: a second worker in the same slot (or one with a clock running
        # behind) changes nothing, and its RETURNING gives no row.
        where=job_schedule.c.last_slot < stmt.excluded.last_slot,
    )
    return conn.execute(upsert.returning(job_schedule.c.kind)).first() is not None
