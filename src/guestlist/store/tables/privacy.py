"""Privacy: suppression after erasure, the audit log, where each person is held, secrets."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, String, Table, Text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

# HMACs of erased or opted-out addresses (compliance P-3): a returning import of the
# same address stays opted out. No plain address is kept.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("identifier_hash", String(64), nullable=False),
    Column("kind", String(20), nullable=False),  # email | phone
    Column("channel", String(20), nullable=False),
    Column("reason", String(40), nullable=False),  # erasure | …
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "identifier_hash", "channel", unique=True),
)

# Append-only: who did what, when, why (P-6). Not profile-scoped: it outlives profiles
# and names them by id only.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(120), nullable=False),  # key:<id> | user:<name> | system | cli
    Column("action", String(60), nullable=False),
    Column("profile_id", BigId, nullable=True),
    Column("detail", Json, nullable=True),
    Column("reason", Text, nullable=True),
    Index(None, "profile_id", "at"),
    Index(None, "at"),
)

# Which connection (destination) holds which person, so erasure reaches each of them.
profile_links = Table(
    "profile_links",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("profile_id", BigId, ForeignKey("profiles.id"), nullable=False),
    Column("connection", String(100), nullable=False),
    Column("external_id", String(255), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "profile_id"),
    info={"profile_scoped": True},
)

# Per-installation secrets (HMAC keys for suppression hashes and link tokens), made on
# first use; kept in the database so one backup restores everything.
installation_secrets = Table(
    "installation_secrets",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
