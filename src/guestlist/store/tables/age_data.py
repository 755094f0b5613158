"""Age evidence (append-only) and the date of birth each profile is judged by."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, String, Table, Text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, UtcDateTime

# One row per age statement or check: the outcome and its evidence, never an image.
age_records = Table(
    "age_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("profile_id", BigId, ForeignKey("profiles.id"), nullable=False),
    Column("dob", Date, nullable=True),  # None: a level without a date (an age gate)
    Column("level", String(20), nullable=False),
    Column("method", String(60), nullable=True),
    Column("provider", String(120), nullable=True),
    Column("reference", String(255), nullable=True),
    Column("country", String(2), nullable=True),
    Column("region", String(6), nullable=True),  # ISO 3166-2, e.g. CA-QC
    Column("source_id", BigId, nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("recorded_by", String(120), nullable=True),
    Column("event_time", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Index(None, "profile_id"),
    info={"profile_scoped": True},
)

# Derived from age_records (compliance A-5): the date of birth that counts, the level
# backing it, and the jurisdiction it is judged in.
age_state = Table(
    "age_state",
    metadata,
    Column("profile_id", BigId, ForeignKey("profiles.id"), primary_key=True),
    Column("dob", Date, nullable=True),
    Column("level", String(20), nullable=True),
    Column("jurisdiction", String(6), nullable=True),
    Column("conflict", Boolean, nullable=False, default=False),
    Column("detail", Text, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    info={"profile_scoped": True},
)
