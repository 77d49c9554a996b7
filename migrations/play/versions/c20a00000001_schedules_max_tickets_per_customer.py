"""schedules: max_tickets_per_customer (issue 20.3)

Revision ID: c20a00000001
Revises: a16c0e5d1002
Create Date: 2026-12-01 15:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c20a00000001'
down_revision: Union[str, Sequence[str], None] = 'a16c0e5d1002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('schedules', sa.Column('max_tickets_per_customer', sa.Integer(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('schedules', 'max_tickets_per_customer')
