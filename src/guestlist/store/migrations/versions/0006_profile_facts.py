"""profile facts: one typed row per profile for segment rules

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 10:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import guestlist.store.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profile_facts",
        sa.Column(
            "profile_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("fresh_from", guestlist.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("fresh_until", guestlist.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("dob", sa.Date(), nullable=True),
        sa.Column("level", sa.String(length=20), nullable=True),
        sa.Column("jurisdiction", sa.String(length=6), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_profile_facts_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_profile_facts")),
    )
    with op.batch_alter_table("profile_facts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_facts_fresh_from"), ["fresh_from"])
        batch_op.create_index(batch_op.f("ix_profile_facts_fresh_until"), ["fresh_until"])
    op.create_table(
        "fact_columns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("ready", sa.Boolean(), nullable=False),
        sa.Column("created_at", guestlist.store.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact_columns")),
        sa.UniqueConstraint("key", name=op.f("uq_fact_columns_key")),
    )


def downgrade() -> None:
    op.drop_table("fact_columns")
    with op.batch_alter_table("profile_facts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_facts_fresh_until"))
        batch_op.drop_index(batch_op.f("ix_profile_facts_fresh_from"))
    op.drop_table("profile_facts")
