from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, String, Table, Text, text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

profiles = Table(
    "profiles",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    # Set when this profile was merged away; lookups follow it to the survivor.
    Column("merged_into", BigId, nullable=True),
    # Set when the person's data was erased (compliance P-2); the row stays as a tombstone.
    Column("erased_at", UtcDateTime, nullable=True),
    # Set while the profile has had no activity and no granted consent for the review
    # period (compliance P-4, guestlist.privacy.retention); cleared when it is active.
    Column("review_flagged_at", UtcDateTime, nullable=True),
    Column("review_reason", String(200), nullable=True),
    Index(None, "merged_into"),
    # Only flagged profiles are in it: the review list pages through them by id.
    Index(
        "ix_profiles_review_flagged",
        "id",
        sqlite_where=text("review_flagged_at IS NOT NULL"),
        postgresql_where=text("review_flagged_at IS NOT NULL"),
    ),
)

# One row per identifier a profile holds. The same identifier may be held by several
# profiles (a household's shared phone) when the rules refused to merge them.
identifiers = Table(
    "identifiers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("profile_id", BigId, ForeignKey("profiles.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # email | phone | user_id | anonymous_id | external
    Column("key", String(320), nullable=False),  # the matching key
    Column("value", String(320), nullable=False),  # as given
    Column("source_id", BigId, nullable=True),
    Column("first_seen_at", UtcDateTime, nullable=False),
    Index(None, "kind", "key"),
    Index(None, "profile_id", "kind", "key", unique=True),
    info={"profile_scoped": True},
)

profile_merges = Table(
    "profile_merges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("profile_id", BigId, nullable=False),  # the survivor
    Column("merged_profile_id", BigId, nullable=False),
    Column("reason", String(40), nullable=False),  # shared_identifier | alias | manual
    Column("identifier_kind", String(20), nullable=True),
    Column("identifier_key", String(320), nullable=True),
    Column("detail", Json, nullable=True),
    Column("event_message_id", Text, nullable=True),
    Column("merged_at", UtcDateTime, nullable=False),
    Index(None, "profile_id"),
    Index(None, "merged_profile_id"),
    info={"profile_scoped": True},
)
