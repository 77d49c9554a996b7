"""plays: ticket_types (issue 20.2)

Revision ID: c20a00000006
Revises: c20a00000004
Create Date: 2026-12-01 16:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c20a00000006'
down_revision: Union[str, Sequence[str], None] = 'c20a00000004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('plays', sa.Column('ticket_types', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('plays', 'ticket_types')
