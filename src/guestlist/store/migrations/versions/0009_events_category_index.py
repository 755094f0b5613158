"""events: the category property as a column of its own, indexed, for segment filters

Shops segment by product category above all ("bourbon buyers of the last 30 days"): a
segment filter `category = "bourbon"` on an event reads this index instead of every
event of the window. The column is generated from `properties` (virtual on SQLite,
stored on PostgreSQL, which has no indexed virtual columns), so it never disagrees
with the JSON, and the index holds what such a lookup needs (type, profile), so the
events' rows are not read at all. docs/segments.md, "Indexed event properties".

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 22:15:00
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The text value as segment filters read it (segments/compile.py, _JsonText). No
# declared type on SQLite: a column type's affinity would turn the number 12 into '12'.
SQLITE = (
    "ALTER TABLE events ADD COLUMN category "
    "GENERATED ALWAYS AS (json_extract(properties, '$.category')) VIRTUAL",
    "CREATE INDEX ix_events_category ON events (name, category, timestamp, type, profile_id)",
)
POSTGRESQL = (
    "ALTER TABLE events ADD COLUMN category text "
    "GENERATED ALWAYS AS (properties #>> '{category}') STORED",
    "CREATE INDEX ix_events_category ON events (name, category, timestamp) "
    "INCLUDE (type, profile_id)",
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in POSTGRESQL if postgresql else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_category")
    op.execute("ALTER TABLE events DROP COLUMN category")
