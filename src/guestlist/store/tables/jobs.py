from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text, text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

jobs = Table(
    "jobs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(80), nullable=False),
    Column("args", Json, nullable=False),
    # Only one live (queued or running) job per unique key; finished ones release it.
    Column("unique_key", String(200), nullable=True),
    Column("status", String(12), nullable=False),  # queued | running | done | dead
    Column("run_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="10"),
    Column("locked_by", String(100), nullable=True),
    Column("locked_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Index("ix_jobs_due", "status", "run_at"),
    Index(
        "uq_jobs_live_unique_key",
        "unique_key",
        unique=True,
        sqlite_where=text("status IN ('queued', 'running')"),
        postgresql_where=text("status IN ('queued', 'running')"),
    ),
)

# The last period each recurring job kind was enqueued for (guestlist.jobs.schedule).
# Updating `last_slot` only forwards is what lets several workers schedule the same
# kind without running it twice in a period, whatever became of the jobs since.
job_schedule = Table(
    "job_schedule",
    metadata,
    Column("kind", String(80), primary_key=True),
    Column("last_slot", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)
