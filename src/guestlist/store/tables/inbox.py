from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

# Raw envelopes exactly as accepted; written in the transaction that decides the 2xx.
inbox = Table(
    "inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source_id", BigId, ForeignKey("sources.id"), nullable=False),
    Column("kind", String(80), nullable=False),  # tracking.batch | shopify.orders/paid | …
    # A vendor's own delivery/event id; a redelivery with the same key is stored once.
    Column("idempotency_key", String(200), nullable=True),
    Column("received_at", UtcDateTime, nullable=False),
    Column("headers", Json, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("status", String(12), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("processed_at", UtcDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Index(None, "source_id", "idempotency_key", unique=True),
    Index("ix_inbox_pending", "status", "id"),
)
