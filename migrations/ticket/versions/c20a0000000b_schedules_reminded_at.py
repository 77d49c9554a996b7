"""schedules.reminded_at: when the show's reminder mail went out (``ticket_svc/reminders.py``)

Revision ID: c20a0000000b
Revises: c20a0000000a
Create Date: 2026-12-02 03:45:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


# revision identifiers, used by Alembic.
revision: str = 'c20a0000000b'
down_revision: Union[str, Sequence[str], None] = 'c20a0000000a'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    ts = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql')
    op.add_column('schedules', sa.Column('reminded_at', ts, nullable=True))
    op.create_index('ix_schedules_reminder', 'schedules', ['reminded_at', 'starts_at'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_schedules_reminder', table_name='schedules')
    op.drop_column('schedules', 'reminded_at')
