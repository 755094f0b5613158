from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

# A connection is one account at one platform (a Shopify shop, a Square seller…).
# Settings that are not secret are kept as JSON; credentials are one encrypted blob.
connections = Table(
    "connections",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("platform", String(40), nullable=False),
    Column("name", String(200), nullable=False, unique=True),
    # Events from this connection carry this source (and its default phone region).
    Column("source_id", BigId, ForeignKey("sources.id"), nullable=False),
    Column("settings", Json, nullable=False),
    Column("secrets", LargeBinary, nullable=False),  # Fernet token of a JSON object
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Where each pull stream of a connection stands: its checkpoint is written in the
# transaction that stores the page before it, so a killed backfill resumes exactly.
connection_streams = Table(
    "connection_streams",
    metadata,
    Column("connection_id", BigId, ForeignKey("connections.id", ondelete="CASCADE"),
           primary_key=True),
    Column("stream", String(60), primary_key=True),
    Column("status", String(12), nullable=False),  # running | done | failed
    Column("checkpoint", Text, nullable=True),  # where the next page starts
    Column("run", Integer, nullable=False, server_default="1"),
    Column("pages", Integer, nullable=False, server_default="0"),
    Column("records", BigInteger, nullable=False, server_default="0"),
    Column("total", BigInteger, nullable=True),  # the vendor's count, when it gives one
    Column("started_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("error", Text, nullable=True),
)

# What happened per connection: deliveries accepted, duplicated or refused, pulls and
# their failures, tests. Shown per connection; never holds a credential or a body.
connection_log = Table(
    "connection_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("connection_id", BigId, ForeignKey("connections.id", ondelete="CASCADE"),
           nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(12), nullable=False),  # webhook | pull | test
    Column("outcome", String(20), nullable=False),  # accepted | duplicate | rejected | …
    Column("status", Integer, nullable=True),  # the HTTP status we answered or got
    Column("delivery_id", String(200), nullable=True),
    Column("detail", Text, nullable=True),
    Column("inbox_id", BigId, nullable=True),
    Index(None, "connection_id", "id"),
)
