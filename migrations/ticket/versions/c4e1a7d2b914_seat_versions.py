"""seat_versions: one counter per show, raised in the transaction of each change of its seats;
schedules.no_single_gaps (a manager's rule per show: no hold may leave one seat alone)

The gateway keeps each watched show's seats from a snapshot and the ``ticket.*`` events; the
counter orders them (issue 14). A table of its own, not a column of ``schedules``: holds take
the show's row in share mode, and raising a counter there would turn two holds' shared locks
into a deadlock.

Revision ID: c4e1a7d2b914
Revises: 93a552498281
Create Date: 2026-12-01 15:30:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = 'c4e1a7d2b914'
down_revision: Union[str, Sequence[str], None] = '93a552498281'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('seat_versions',
    sa.Column('schedule_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('schedule_id')
    )
    op.execute("INSERT IGNORE INTO seat_versions (schedule_id, version) "
               "SELECT id, 0 FROM schedules")
    op.add_column('schedules', sa.Column('no_single_gaps', sa.SmallInteger(),
                                         server_default='0', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_column('schedules', 'no_single_gaps')
    op.drop_table('seat_versions')
