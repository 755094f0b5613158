"""events: an index on the category property, for segment filters on it

Shops segment by product category above all ("bourbon buyers of the last 30 days"):
a segment filter `category = "bourbon"` on an event reads this index instead of every
event of the window. It holds what such a lookup needs (type, profile) so the events'
rows are not read at all. docs/segments.md, "Indexed event properties".

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

# The expressions must read exactly as the segment compiler writes them
# (segments/compile.py, _JsonText), or the databases will not use the index.
SQLITE = (
    "CREATE INDEX ix_events_category ON events "
    "(name, json_extract(properties, '$.category'), timestamp, type, profile_id)"
)
POSTGRESQL = (
    "CREATE INDEX ix_events_category ON events "
    "(name, (properties #>> '{category}'), timestamp) INCLUDE (type, profile_id)"
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(POSTGRESQL if dialect == "postgresql" else SQLITE)


def downgrade() -> None:
    op.execute("DROP INDEX ix_events_category")
