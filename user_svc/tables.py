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

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from messages.db import Timestamp, inbox_table, outbox_table

metadata = MetaData()

users = Table(
    "users", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("email", String(254), nullable=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    # Deleted accounts stay as rows: their name stays taken and their tokens stay refused.
    Column("deleted_at", Timestamp, nullable=True),
    # Tokens carry the version they were issued at; raising it revokes every older token.
    Column("token_version", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("email_verified", Boolean, nullable=False, server_default="0"),
    Column("language", String(8), nullable=True),
    Index("ix_users_email", "email"),
)

email_codes = Table(
    "email_codes", metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("email", String(254), nullable=False),
    Column("code_hash", String(64), nullable=False),   # sha256 hex of the 6 digits
    Column("tries", Integer, nullable=False, server_default="0"),
    Column("expires_at", Timestamp, nullable=False),
)

reset_requests = Table(
    "reset_requests", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False),
    Column("requested_at", Timestamp, nullable=False),
)

reset_tokens = Table(
    "reset_tokens", metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 hex of the token
    Column("user_id", BigInteger, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("used_at", Timestamp, nullable=True),
    Index("ix_reset_tokens_user", "user_id"),
)

mails = Table(
    "mails", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("mail_key", String(120), nullable=False, unique=True),
    Column("to_addr", String(254), nullable=False),
    Column("subject", String(300), nullable=False),
    Column("body", Text, nullable=False),                # JSON: text, html, attachments
    Column("status", String(8), nullable=False),         # pending | sent
    Column("tries", Integer, nullable=False, server_default="0"),
    Column("next_try_at", Timestamp, nullable=False),
    Column("last_error", String(300), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("sent_at", Timestamp, nullable=True),
    Index("ix_mails_due", "status", "next_try_at"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
