"""user_svc's tables (database ``<namespace>_user``).

- ``users``: accounts; ``email_verified`` once the address's code came back, ``language``
  (en | zh) of the mail they get.
- ``email_codes``: the one live verification code per account (hashed), with its tries.
- ``reset_requests``: password-reset requests as asked, one row each whatever the address,
  so the answer costs the same whether or not an account has it (no discovery by timing);
  the mail sender turns them into tokens and mails.
- ``reset_tokens``: password-reset tokens (hashed); confirming one ends every token of the
  account.
- ``mails``: the mail outbox. A mail row is written in the same transaction as what it tells
  (a code, a token) or as the inbox row of the event it answers, with a ``mail_key`` unique per
  event and recipient, so a mail is never written twice for one event; ``mailer`` sends it
  until the SMTP server accepts it.
"""

import sqlalchemy as sa

from messages.db import inbox_table, outbox_table
from messages.tables import keyed, ref, timestamp

metadata = sa.MetaData()

users = keyed(
    "users", metadata,
    sa.Column("username", sa.String(32), nullable=False, unique=True),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    # Deleted accounts stay as rows: their name stays taken and their tokens stay refused.
    timestamp("deleted_at", nullable=True),
    # Tokens carry the version they were issued at; raising it revokes every older token.
    sa.Column("token_version", sa.Integer, nullable=False, default=0),
    timestamp("created_at"),
    sa.Column("email_verified", sa.Boolean, nullable=False, server_default="0"),
    sa.Column("language", sa.String(8), nullable=True),
    sa.Index("ix_users_email", "email"),
)

email_codes = sa.Table(
    "email_codes", metadata,
    ref("user_id", key=True),
    sa.Column("email", sa.String(254), nullable=False),
    sa.Column("code_hash", sa.String(64), nullable=False),  # sha256 hex of the 6 digits
    sa.Column("tries", sa.Integer, nullable=False, server_default="0"),
    timestamp("expires_at"),
)

reset_requests = keyed(
    "reset_requests", metadata,
    sa.Column("email", sa.String(254), nullable=False),
    timestamp("requested_at"),
)

reset_tokens = sa.Table(
    "reset_tokens", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # sha256 hex of the token
    ref("user_id"),
    timestamp("expires_at"),
    timestamp("used_at", nullable=True),
    sa.Index("ix_reset_tokens_user", "user_id"),
)

mails = keyed(
    "mails", metadata,
    sa.Column("mail_key", sa.String(120), nullable=False, unique=True),
    sa.Column("to_addr", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # JSON: text, html, attachments
    sa.Column("status", sa.String(8), nullable=False),  # pending | sent | failed (never sendable)
    sa.Column("tries", sa.Integer, nullable=False, server_default="0"),
    timestamp("next_try_at"),
    sa.Column("last_error", sa.String(300), nullable=True),
    timestamp("created_at"),
    timestamp("sent_at", nullable=True),
    sa.Index("ix_mails_due", "status", "next_try_at"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
