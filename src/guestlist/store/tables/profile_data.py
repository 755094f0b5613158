from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

# Latest value per trait, by event time (not arrival time).
traits = Table(
    "traits",
    metadata,
    Column("profile_id", BigId, ForeignKey("profiles.id"), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("value", Json, nullable=True),
    Column("source_id", BigId, nullable=True),
    Column("event_time", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    info={"profile_scoped": True},
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("profile_id", BigId, ForeignKey("profiles.id"), nullable=False),
    Column("source_id", BigId, nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("type", String(20), nullable=False),  # identify | track | page | screen | group | alias
    Column("name", String(200), nullable=True),  # track event name, page/screen name
    Column("properties", Json, nullable=True),
    Column("traits", Json, nullable=True),
    Column("context", Json, nullable=True),
    Column("user_id", Text, nullable=True),
    Column("anonymous_id", Text, nullable=True),
    # Invalid identifiers found in an accepted event: kept visible, never dropped silently.
    Column("issues", Json, nullable=True),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("inbox_id", BigId, nullable=True),
    Index(None, "source_id", "message_id", unique=True),
    Index(None, "profile_id", "timestamp"),
    Index(None, "name", "timestamp"),
    info={"profile_scoped": True},
)
