"""schedules: ticket_types; tickets: ticket_type (issue 20.2)

Revision ID: c20a00000007
Revises: c20a00000005
Create Date: 2026-12-01 16:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c20a00000007'
down_revision: Union[str, Sequence[str], None] = 'c20a00000005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('schedules', sa.Column('ticket_types', sa.Text(), nullable=True))
    op.add_column('tickets', sa.Column('ticket_type', sa.String(length=40), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('tickets', 'ticket_type')
    op.drop_column('schedules', 'ticket_types')
