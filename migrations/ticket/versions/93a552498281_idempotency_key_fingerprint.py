"""idempotency keys: a fingerprint of the request; one key per user, whatever the command

A key reused with a different request (another body, another reservation, another route) is
refused with 422 idempotency_key_reused: the row keeps a fingerprint of its first request, and
its primary key no longer includes the command. Keys live 24 h; where a user had used one key
for two commands, one of the two rows is kept.

Revision ID: 93a552498281
Revises: a16c0e5d1003
Create Date: 2026-12-01 14:33:33.448957

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '93a552498281'
down_revision: Union[str, Sequence[str], None] = 'a16c0e5d1003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('idempotency_keys', sa.Column('fingerprint', sa.String(length=64), nullable=True))
    op.execute(
        "DELETE k FROM idempotency_keys k JOIN idempotency_keys o ON o.user_id = k.user_id "
        "AND o.idem_key = k.idem_key AND o.command < k.command")
    op.execute("ALTER TABLE idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (user_id, idem_key)")


def downgrade() -> None:
    """Downgrade schema."""
    op.execute(
        "ALTER TABLE idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (user_id, command, idem_key)")
    op.drop_column('idempotency_keys', 'fingerprint')
