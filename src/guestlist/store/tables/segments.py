"""Segments, who is in them (with history), the change log sync reads, rechecks."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, ForeignKey, Index, Integer, String, Table, Text, text

from guestlist.store.tables.base import metadata
from guestlist.store.types import BigId, Json, UtcDateTime

segments = Table(
    "segments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("slug", String(100), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("rule", Json, nullable=False),  # the JSON contract (segments.rules)
    # A restricted category (e.g. "alcohol") makes the guard part of membership, on
    # `channel` for `purpose` and at `required_level` (None: the category's default).
    Column("category", String(100), nullable=True),
    Column("channel", String(20), nullable=True),
    Column("purpose", String(40), nullable=True),
    Column("required_level", String(20), nullable=True),
    Column("description", Text, nullable=True),
    Column("version", Integer, nullable=False, default=1),  # +1 whenever the rule changes
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("evaluated_at", UtcDateTime, nullable=True),  # last full evaluation
)

# One row per stint in a segment: exited_at is None while the profile is a member.
segment_memberships = Table(
    "segment_memberships",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("segment_id", BigId, ForeignKey("segments.id"), nullable=False),
    Column("profile_id", BigId, ForeignKey("profiles.id"), nullable=False),
    Column("entered_at", UtcDateTime, nullable=False),
    Column("exited_at", UtcDateTime, nullable=True),
    Index(
        "uq_segment_memberships_current",
        "segment_id",
        "profile_id",
        unique=True,
        sqlite_where=text("exited_at IS NULL"),
        postgresql_where=text("exited_at IS NULL"),
    ),
    Index(None, "profile_id", "segment_id"),
    info={"profile_scoped": True},
)

# Append-only log of entries and exits, read by sync with a cursor (id).
segment_changes = Table(
    "segment_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("segment_id", BigId, ForeignKey("segments.id"), nullable=False),
    Column("profile_id", BigId, ForeignKey("profiles.id"), nullable=False),
    Column("change", String(10), nullable=False),  # entered | exited
    Column("reason", String(20), nullable=False),  # event | schedule | rule | merge | erasure
    Column("at", UtcDateTime, nullable=False),
    Index(None, "segment_id", "id"),
    Index(None, "profile_id"),
    info={"profile_scoped": True},
)

# When a profile's memberships can next change by time alone (an event ageing out of
# a window, a birthday, consent expiring): the scheduled recheck reads only these.
segment_rechecks = Table(
    "segment_rechecks",
    metadata,
    Column("profile_id", BigId, ForeignKey("profiles.id"), primary_key=True),
    Column("due_at", UtcDateTime, nullable=False),
    Index(None, "due_at"),
    info={"profile_scoped": True},
)

# Computed traits (segments.computed): name and definition; the values are traits.
computed_traits = Table(
    "computed_traits",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("definition", Json, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("computed_at", UtcDateTime, nullable=True),  # last computed for everyone
)

# One row per live profile holding what segment rules read most, typed and side by
# side, so a rule over a million profiles is one scan of one table (segments.facts).
# The fixed columns are here; one column per trait, consent channel and event
# aggregate the stored rules use is added at run time (`fact_columns`). A row is
# exact from `fresh_from` until `fresh_until` (the profile's next recheck); outside
# that, rules read the profile's own rows instead.
profile_facts = Table(
    "profile_facts",
    metadata,
    Column("profile_id", BigId, ForeignKey("profiles.id"), primary_key=True, autoincrement=False),
    Column("fresh_from", UtcDateTime, nullable=False),
    Column("fresh_until", UtcDateTime, nullable=False),
    Column("dob", Date, nullable=True),  # age_state's, copied
    Column("level", String(20), nullable=True),
    Column("jurisdiction", String(6), nullable=True),
    Index(None, "fresh_from"),
    Index(None, "fresh_until"),
    info={"profile_scoped": True},
)

# The columns added to profile_facts: which fact each holds (`key`, segments.facts)
# and whether every row has it yet.
fact_columns = Table(
    "fact_columns",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, unique=True),
    Column("ready", Boolean, nullable=False, default=False),
    Column("created_at", UtcDateTime, nullable=False),
)
