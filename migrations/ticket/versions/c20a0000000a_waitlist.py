"""waitlist (issue 20.4)

Revision ID: c20a0000000a
Revises: c20a00000007
Create Date: 2026-12-01 16:20:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


# revision identifiers, used by Alembic.
revision: str = 'c20a0000000a'
down_revision: Union[str, Sequence[str], None] = 'c20a00000007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    ts = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')
    op.create_table(
        'waitlist',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('schedule_id', sa.BigInteger(), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('quantity', sa.SmallInteger(), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('reservation_id', sa.BigInteger(), nullable=True),
        sa.Column('joined_at', ts, nullable=False),
        sa.Column('offered_at', ts, nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_waitlist_line', 'waitlist', ['schedule_id', 'status', 'id'])
    op.create_index('ix_waitlist_user', 'waitlist', ['user_id', 'id'])
    op.create_index('ix_waitlist_reservation', 'waitlist', ['reservation_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('waitlist')
