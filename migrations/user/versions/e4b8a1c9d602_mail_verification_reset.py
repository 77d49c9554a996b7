"""e-mail: users.email_verified and language; email_codes, reset_tokens, mails (the outbox)

Revision ID: e4b8a1c9d602
Revises: 5c5a4764ac19
Create Date: 2026-12-01 16:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# revision identifiers, used by Alembic.
revision: str = 'e4b8a1c9d602'
down_revision: Union[str, Sequence[str], None] = '5c5a4764ac19'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('users', sa.Column('email_verified', sa.Boolean(), server_default='0',
                                     nullable=False))
    op.add_column('users', sa.Column('language', sa.String(length=8), nullable=True))
    op.create_index('ix_users_email', 'users', ['email'])
    op.create_table(
        'email_codes',
        sa.Column('user_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('tries', sa.Integer(), server_default='0', nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint('user_id'))
    op.create_table(
        'reset_tokens',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', TIMESTAMP, nullable=False),
        sa.Column('used_at', TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint('token_hash'))
    op.create_index('ix_reset_tokens_user', 'reset_tokens', ['user_id'])
    op.create_table(
        'mails',
        sa.Column('id', sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column('mail_key', sa.String(length=120), nullable=False),
        sa.Column('to_addr', sa.String(length=254), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('tries', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_try_at', TIMESTAMP, nullable=False),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('created_at', TIMESTAMP, nullable=False),
        sa.Column('sent_at', TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('mail_key'))
    op.create_index('ix_mails_due', 'mails', ['status', 'next_try_at'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('mails')
    op.drop_table('reset_tokens')
    op.drop_table('email_codes')
    op.drop_index('ix_users_email', table_name='users')
    op.drop_column('users', 'language')
    op.drop_column('users', 'email_verified')
