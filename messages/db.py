"""Database access shared by every service: one engine per process, transactions that carry
their events into the outbox, and the outbox and inbox tables every service database has."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncmy
import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.mysql import DATETIME, LONGBLOB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from messages.contracts.base import Envelope, Event, utcnow
from messages.settings import Settings

# Naive UTC in the database, microsecond precision; `as_utc` makes it aware again on the way out.
Timestamp = DateTime().with_variant(DATETIME(fsp=6), "mysql")


def as_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def to_db(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox", metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False),
        Column("routing_key", String(100), nullable=False),
        Column("body", LargeBinary().with_variant(LONGBLOB, "mysql"), nullable=False),
        Column("created_at", Timestamp, nullable=False),
        Column("published_at", Timestamp, nullable=True),
        Index("ix_outbox_unpublished", "published_at", "id"),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox", metadata,
        Column("event_id", String(36), primary_key=True),
        Column("event_type", String(100), nullable=False),
        Column("handled_at", Timestamp, nullable=False),
    )


class Tx:
    """One database transaction. ``emit`` queues an event that is written to the outbox in
    this same transaction, so the event exists exactly when the change it describes does."""

    __slots__ = ("conn", "events", "_producer")

    def __init__(self, conn: AsyncConnection, producer: str) -> None:
        self.conn = conn
        self.events: list[Envelope] = []
        self._producer = producer

    async def execute(self, statement: Any, params: Any = None):
        return await self.conn.execute(statement, params)

    def emit(self, event: Event) -> Envelope:
        envelope = Envelope.wrap(event, self._producer)
        self.events.append(envelope)
        return envelope


class Database:
    def __init__(self, settings: Settings, service: str) -> None:
        self.service = service
        self.engine: AsyncEngine = create_async_engine(
            settings.database_url(service),
            pool_size=settings.db_pool_size,
            # A steady pool: overflow connections opened and closed under load exhaust the
            # server's max_connections (151 by default) when several services share it.
            max_overflow=settings.db_pool_size // 2,
            pool_recycle=1800,
            pool_timeout=5,
        )
        self.outbox_written = asyncio.Event()  # nudges the relay right after a commit
        self._settings = settings
        self._plain_pool = None
        self._plain_lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self.engine.begin() as conn:
            tx = Tx(conn, self.service)
            yield tx
            if tx.events:
                await conn.execute(text(
                    "INSERT INTO outbox (event_id, routing_key, body, created_at) "
                    "VALUES (:event_id, :routing_key, :body, :created_at)"),
                    [{"event_id": e.id, "routing_key": e.type,
                      "body": orjson.dumps(e.model_dump(mode="json")),
                      "created_at": to_db(utcnow())} for e in tx.events])
        if tx.events:
            self.outbox_written.set()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def fetch(self, sql: str, args: Any = None) -> tuple[tuple, ...]:
        """A read on a hot path, in plain asyncmy: through SQLAlchemy the same one-row query
        costs several times the CPU of the query itself (PERFORMANCE.md). ``%s`` parameters,
        tuples back, autocommit (no transaction is left open)."""
        pool = self._plain_pool or await self._open_plain_pool()
        async with pool.acquire() as conn, conn.cursor() as cursor:
            await cursor.execute(sql, args)
            return await cursor.fetchall()

    async def _open_plain_pool(self):
        async with self._plain_lock:
            if self._plain_pool is None:
                s = self._settings
                self._plain_pool = await asyncmy.create_pool(
                    host=s.db_host, port=s.db_port, user=s.db_user,
                    password=s.db_password.get_secret_value(),
                    db=s.database_name(self.service), autocommit=True, minsize=1,
                    maxsize=max(2, s.db_pool_size // 2), pool_recycle=1800)
        return self._plain_pool

    async def dispose(self) -> None:
        if self._plain_pool is not None:
            self._plain_pool.close()
            await self._plain_pool.wait_closed()
        await self.engine.dispose()


