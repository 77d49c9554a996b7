"""schedules: version, edit_version

Revision ID: a16c0e5d1003
Revises: 40d89dbdce57
Create Date: 2026-12-01 14:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'a16c0e5d1003'
down_revision: Union[str, Sequence[str], None] = '40d89dbdce57'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('schedules', sa.Column('version', sa.Integer(), server_default='0', nullable=False))
    op.add_column('schedules', sa.Column('edit_version', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('schedules', 'edit_version')
    op.drop_column('schedules', 'version')
