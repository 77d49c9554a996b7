"""seats: zone; schedules: prices per zone (issue 20.1)

Revision ID: c20a00000005
Revises: c20a00000002
Create Date: 2026-12-01 15:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c20a00000005'
down_revision: Union[str, Sequence[str], None] = 'c20a00000002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('schedules', sa.Column('prices', sa.Text(), nullable=True))
    op.add_column('seats', sa.Column('zone', sa.String(length=40), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('seats', 'zone')
    op.drop_column('schedules', 'prices')
