"""reset_requests: password-reset requests, written the same way whatever the address

Revision ID: f1a7c3d2b845
Revises: e4b8a1c9d602
Create Date: 2026-12-01 17:50:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision: str = 'f1a7c3d2b845'
down_revision: Union[str, Sequence[str], None] = 'e4b8a1c9d602'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'reset_requests',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('requested_at', TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint('id'))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('reset_requests')
