"""audit_log (issue 20.6)

Revision ID: c20a00000009
Revises: c20a00000008
Create Date: 2026-12-01 16:10:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from sqlalchemy.dialects import mysql


# revision identifiers, used by Alembic.
revision: str = 'c20a00000009'
down_revision: Union[str, Sequence[str], None] = 'c20a00000008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
        sa.Column('action', sa.String(length=20), nullable=False),
        sa.Column('actor_id', sa.BigInteger(), nullable=True),
        sa.Column('actor_role', sa.String(length=16), nullable=True),
        sa.Column('address', sa.String(length=64), nullable=True),
        sa.Column('subject', sa.String(length=60), nullable=False),
        sa.Column('details', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_at', 'audit_log', ['at', 'id'])
    op.create_index('ix_audit_actor', 'audit_log', ['actor_id', 'at'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('audit_log')
