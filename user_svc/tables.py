"""user_svc's tables (database ``<namespace>_user``)."""

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, String, Table

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
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
