"""attendance: sales.checked_in_at (ticket.checked_in), shows.ends_at (no-shows after it)

Revision ID: d2a9c4e7b310
Revises: 8662c35e83fc
Create Date: 2026-12-01 15:50:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision: str = 'd2a9c4e7b310'
down_revision: Union[str, Sequence[str], None] = '8662c35e83fc'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('sales', sa.Column('checked_in_at', TIMESTAMP, nullable=True))
    op.add_column('shows', sa.Column('ends_at', TIMESTAMP, nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('shows', 'ends_at')
    op.drop_column('sales', 'checked_in_at')
