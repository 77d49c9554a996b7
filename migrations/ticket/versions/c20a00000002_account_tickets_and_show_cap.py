"""schedules: max_tickets_per_customer; account_tickets (issue 20.3)

Revision ID: c20a00000002
Revises: c7e1d0a4f215
Create Date: 2026-12-01 15:40:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c20a00000002'
down_revision: Union[str, Sequence[str], None] = 'c7e1d0a4f215'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('schedules', sa.Column('max_tickets_per_customer', sa.Integer(), nullable=True))
    op.create_table(
        'account_tickets',
        sa.Column('schedule_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('user_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('tickets', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('schedule_id', 'user_id'),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('account_tickets')
    op.drop_column('schedules', 'max_tickets_per_customer')
