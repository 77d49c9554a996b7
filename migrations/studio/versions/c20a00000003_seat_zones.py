"""seat_zones: a seat's price zone (issue 20.1)

Revision ID: c20a00000003
Revises: a16c0e5d1001
Create Date: 2026-12-01 15:50:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c20a00000003'
down_revision: Union[str, Sequence[str], None] = 'a16c0e5d1001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'seat_zones',
        sa.Column('studio_id', sa.BigInteger(), nullable=False),
        sa.Column('seat_row', sa.SmallInteger(), nullable=False),
        sa.Column('seat_col', sa.SmallInteger(), nullable=False),
        sa.Column('zone', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['studio_id'], ['studios.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('studio_id', 'seat_row', 'seat_col'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('seat_zones')
