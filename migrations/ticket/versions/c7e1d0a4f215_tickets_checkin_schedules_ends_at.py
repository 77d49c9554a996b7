"""e-tickets and check-in: tickets.code_version, checked_in_at, checked_in_by; schedules.ends_at

Revision ID: c7e1d0a4f215
Revises: c4e1a7d2b914
Create Date: 2026-12-01 15:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision: str = 'c7e1d0a4f215'
down_revision: Union[str, Sequence[str], None] = 'c4e1a7d2b914'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('tickets', sa.Column('code_version', sa.Integer(), server_default='1',
                                       nullable=False))
    op.add_column('tickets', sa.Column('checked_in_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql"), nullable=True))
    op.add_column('tickets', sa.Column('checked_in_by', sa.BigInteger(), nullable=True))
    op.add_column('schedules', sa.Column('ends_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql"), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('schedules', 'ends_at')
    op.drop_column('tickets', 'checked_in_by')
    op.drop_column('tickets', 'checked_in_at')
    op.drop_column('tickets', 'code_version')
