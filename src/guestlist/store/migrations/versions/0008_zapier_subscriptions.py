"""zapier_subscriptions: REST Hook subscriptions of Zapier apps

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-27 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import guestlist.store.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('zapier_subscriptions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('connection_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('segment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target_url', sa.String(length=2000), nullable=False),
    sa.Column('created_by', sa.String(length=60), nullable=True),
    sa.Column('created_at', guestlist.store.types.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], name=op.f('fk_zapier_subscriptions_connection_id_connections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_zapier_subscriptions_segment_id_segments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_zapier_subscriptions'))
    )
    with op.batch_alter_table('zapier_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zapier_subscriptions_connection_id_target_url'), ['connection_id', 'target_url'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('zapier_subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_zapier_subscriptions_connection_id_target_url'))

    op.drop_table('zapier_subscriptions')
