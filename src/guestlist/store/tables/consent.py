"""The consent ledger (append-only) and the state derived from it."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

# The exact wording shown to the person, stored once and referenced by its SHA-256.
consent_texts = Table(
    "consent_texts",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("text", Text, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
)

# One row per consent statement, never updated except by erasure, which blanks the
# personal columns (identifier, ip, user_agent, proof) and keeps their HMACs, so the
# hash chain still verifies. `chain_id` is the profile the record was written for and
# never changes; `profile_id` follows merges.
consent_records = Table(
    "consent_records",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("profile_id", BigId, ForeignKey("profiles.id"), nullable=False),
    Column("chain_id", BigId, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("channel", String(20), nullable=False),
    Column("purpose", String(40), nullable=False),
    Column("status", String(20), nullable=False),  # granted | denied | withdrawn | pending
    Column("kind", String(20), nullable=False),  # express | implied
    Column("identifier", String(320), nullable=True),  # the address or number (its key)
    Column("identifier_hash", String(64), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("source_id", BigId, nullable=True),
    Column("connection", String(100), nullable=True),
    Column("legal_basis", String(40), nullable=True),
    Column("text_hash", String(64), nullable=True),
    Column("url", Text, nullable=True),
    Column("message_id", String(255), nullable=True),
    Column("keyword", String(60), nullable=True),
    Column("recorded_by", String(120), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("user_agent", Text, nullable=True),
    Column("proof", Json, nullable=True),  # further evidence (store, staff, brand, …)
    Column("needs_review", Boolean, nullable=False, default=False),
    Column("personal_hash", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=True),
    Column("record_hash", String(64), nullable=False),
    Index(None, "chain_id", "seq", unique=True),
    Index(None, "profile_id", "channel", "purpose"),
    Index(None, "identifier_hash"),
    Index(None, "event_time"),
    info={"profile_scoped": True},
)

# Current state per profile, channel, purpose and identifier, derived from the ledger
# by event time (a withdrawal wins a tie). What segments and sends read.
consent_state = Table(
    "consent_state",
    metadata,
    Column("profile_id", BigId, ForeignKey("profiles.id"), primary_key=True),
    Column("channel", String(20), primary_key=True),
    Column("purpose", String(40), primary_key=True),
    Column("identifier_hash", String(64), primary_key=True),
    Column("identifier", String(320), nullable=True),
    Column("status", String(20), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("event_time", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("record_id", BigId, nullable=False),
    Index(None, "channel", "purpose", "status"),
    info={"profile_scoped": True},
)

# Where a chain ended when its records were purged after the legal hold (P-3a,
# guestlist.privacy.legal_hold): whole chains go, so what is left still verifies, and
# this row keeps the chain's length, its head hash, until when it was held and when it
# went. Not profile-scoped: it holds no personal data and outlives the evidence.
consent_chain_checkpoints = Table(
    "consent_chain_checkpoints",
    metadata,
    Column("chain_id", BigId, primary_key=True),
    Column("profile_id", BigId, nullable=False),  # the erased person's profile
    Column("last_seq", Integer, nullable=False),
    Column("head_hash", String(64), nullable=False),  # record_hash of the last record
    Column("records", Integer, nullable=False),
    Column("held_until", UtcDateTime, nullable=False),
    Column("purged_at", UtcDateTime, nullable=False),
    Index(None, "profile_id"),
)
