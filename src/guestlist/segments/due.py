"""Mark profiles whose segment memberships must be re-evaluated soon.

Writers outside the event pipeline (an unsubscribe click, an inbound STOP, a double
opt-in confirmation) call `mark_due`; the worker's recheck pass re-evaluates them
within a poll. The pipeline re-evaluates the profiles of each batch itself. Kept free
of imports from the rest of guestlist so any module can call it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Connection, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from guestlist.store.tables import profile_facts, segment_rechecks, segments
from guestlist.store.types import utcnow

STALE: Final = datetime(1970, 1, 1, tzinfo=UTC)  # a facts row's fresh_until: out of date


def mark_due(conn: Connection, profile_ids: Iterable[int], at: datetime | None = None) -> None:
    """Make each profile's recheck due at `at` (now) unless it is due sooner already."""
    ids = sorted(set(profile_ids))
    rows = [{"profile_id": pid, "due_at": at or utcnow()} for pid in ids]
    if not rows:
        return
    # Their facts rows (segments.facts) no longer say what their own rows do.
    conn.execute(
        update(profile_facts).where(profile_facts.c.profile_id.in_(ids)).values(fresh_until=STALE)
    )
    if conn.scalar(select(segments.c.id).limit(1)) is None:
        return  # no segment can change
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(segment_rechecks)
    stmt = stmt.on_conflict_do_update(
        index_elements=[segment_rechecks.c.profile_id],
        set_={"due_at": func.min(segment_rechecks.c.due_at, stmt.excluded.due_at)}
        if conn.dialect.name == "sqlite"
        else {"due_at": func.least(segment_rechecks.c.due_at, stmt.excluded.due_at)},
    )
    conn.execute(stmt, rows)
