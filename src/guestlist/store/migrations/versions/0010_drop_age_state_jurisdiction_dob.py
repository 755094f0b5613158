"""age_state: drop the (jurisdiction, dob) index, which no query reads

Every reader of `age_state` finds its rows by profile (the primary key), segments'
of-age conditions included (bench/results/segments-plans.txt: SQLite and PostgreSQL
both read `age_state` by `profile_id`). The index only cost writes: a new state goes
to a random place in it, so a 2,000-customer import batch at a million customers
rewrote 831 of its pages, 12 % of what the batch's commit wrote (docs/performance.md,
stop 14).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 05:25:00
"""

from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_age_state_jurisdiction_dob")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_age_state_jurisdiction_dob ON age_state (jurisdiction, dob)")
