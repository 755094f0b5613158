"""computed traits

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 08:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import guestlist.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "computed_traits",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", guestlist.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", guestlist.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("computed_at", guestlist.store.types.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_computed_traits")),
    )


def downgrade() -> None:
    op.drop_table("computed_traits")
