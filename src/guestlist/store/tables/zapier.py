"""Zapier REST Hook subscriptions: which Zap wants to hear about which segment."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, UtcDateTime

# One row per subscribed Zap. A Zapier app subscribes when a Zap using a REST Hook
# trigger is turned on and unsubscribes when it is turned off; the activation side posts
# to `target_url` and deletes the row when Zapier answers 410 Gone.
zapier_subscriptions = Table(
    "zapier_subscriptions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("connection_id", BigId, ForeignKey("connections.id", ondelete="CASCADE"),
           nullable=False),
    Column("event", String(40), nullable=False),  # segment.entered
    Column("segment_id", BigId, ForeignKey("segments.id", ondelete="CASCADE"), nullable=False),
    Column("target_url", String(2000), nullable=False),  # Zapier's hookUrl
    Column("created_by", String(60), nullable=True),  # key:<id>
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "connection_id", "target_url", unique=True),
)
