from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, UtcDateTime

# A source is where data comes from: a website's tracking key, an import, a connection.
sources = Table(
    "sources",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("default_region", String(2), nullable=False, server_default="US"),
    Column("created_at", UtcDateTime, nullable=False),
)

# Keys are random 256-bit strings, so a plain SHA-256 is a safe and fast hash for them
# (a slow password hash is for low-entropy secrets).
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(10), nullable=False),  # write | read | admin
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("source_id", BigId, ForeignKey("sources.id"), nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index(None, "source_id"),
)
