"""Liveness of the bus when a dependency stops answering without closing anything: a frozen
(SIGSTOPped) broker and a frozen database.

Freezing the shared RabbitMQ or MariaDB would break every other run on the machine, so each
test here freezes a server of its own (tests/private_servers.py), started once for the module.
A test service (``Service.main`` in this process, the same runtime every TTMS service runs)
and an ``RpcClient`` (what the gateway uses) are pointed at them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import create_async_engine

from messages import errors
from messages.broker import Broker
from messages.contracts.base import Command, Event
from messages.db import (
    PROBE_SECONDS,
    STALL_SECONDS,
    TICK_SECONDS,
    Database,
    inbox_table,
    outbox_table,
)
from messages.rpc import RpcClient
from messages.service import Handlers, Service
from messages.settings import Settings
from tests import private_servers
from tests.conftest import NAMESPACE
from tests.waiting import wait_for

NS = f"{NAMESPACE}_live"
ALICE = {"user_id": 7, "role": "customer"}


class Note(Command, name="lv.note"):
    key: str


class Count(Command, name="lv.count"):
    pass


class Noted(Event, type="lv.noted"):
    key: str


handlers = Handlers()


@handlers.command(Note)
async def note(cmd: Note, ctx) -> dict[str, Any]:
    """A row and an event in one transaction (SQLAlchemy); the event's handler records it."""
    async with ctx.app.db.transaction() as tx:
        await tx.execute(text("INSERT INTO notes (note_key) VALUES (:k)"), {"k": cmd.key})
        tx.emit(Noted(key=cmd.key))
    return {"key": cmd.key}


@handlers.command(Count)
async def count(cmd: Count, ctx) -> dict[str, Any]:
    """A read on plain asyncmy (``Database.fetch``, the hot paths' way)."""
    [(notes,)] = await ctx.app.db.fetch("SELECT COUNT(*) FROM notes")
    return {"notes": notes}


@handlers.event(Noted)
async def on_noted(event: Noted, tx, app) -> None:
    await tx.execute(text("INSERT INTO effects (note_key) VALUES (:k)"), {"k": event.key})


def _tables() -> MetaData:
    metadata = MetaData()
    outbox_table(metadata)
    inbox_table(metadata)
    for name in ("notes", "effects"):
        Table(name, metadata, Column("id", Integer, primary_key=True, autoincrement=True),
              Column("note_key", String(64), nullable=False, index=True))
    return metadata


async def _create_database(settings: Settings) -> None:
    engine = create_async_engine(settings.database_url("lv", with_database=False))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{settings.database_name('lv')}`"))
            await conn.execute(text(f"CREATE DATABASE `{settings.database_name('lv')}`"))
    finally:
        await engine.dispose()
    engine = create_async_engine(settings.database_url("lv"))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_tables().create_all)
    finally:
        await engine.dispose()


async def _drop_database(settings: Settings) -> None:
    engine = create_async_engine(settings.database_url("lv", with_database=False))
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS `{settings.database_name('lv')}`"))
    finally:
        await engine.dispose()


@asynccontextmanager
async def running(settings: Settings):
    """The test service ``lv`` and a client of it (a broker connection and an RpcClient, as
    the gateway has), until the block ends."""
    await _create_database(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(Service("lv", handlers, settings).main(stop))
    broker = Broker(settings.amqp_url, f"{settings.namespace}-client",
                    settings.amqp_heartbeat_seconds)
    rpc = RpcClient(broker, settings.names, settings.rpc_timeout_seconds)
    db = Database(settings, "lv")
    try:
        await broker.start()
        await wait_for(lambda: _answers(rpc), 30, what="the lv service")
        yield rpc, broker, db
    finally:
        stop.set()
        await broker.stop()
        await asyncio.wait_for(task, 30)
        await db.dispose()
        await _drop_database(settings)


async def _answers(rpc: RpcClient) -> bool:
    try:
        await rpc.call("lv.count", {}, ALICE, timeout=1)
        return True
    except errors.ServiceError:
        return False


async def _rows(db: Database, table: str, key: str) -> int:
    [(n,)] = await db.fetch(f"SELECT COUNT(*) FROM {table} WHERE note_key = %s", (key,))
    return n


def _served(server: private_servers.PrivateServer | None, missing: str):
    """The fixture's server until the module ends; the module is skipped without one."""
    if server is None:
        pytest.skip(f"no {missing} binaries")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def private_broker():
    yield from _served(private_servers.start_rabbitmq(f"{NS}_rmq"),
                       "RabbitMQ (/usr/lib/rabbitmq/bin/rabbitmq-server, erl)")


@pytest.fixture(scope="module")
def private_database():
    yield from _served(private_servers.start_mariadb(f"{NS}_db"),
                       "MariaDB (mariadbd, mariadb-install-db)")


# -- a frozen broker ------------------------------------------------------------------------

FREEZE_SECONDS = 15


async def test_a_frozen_broker_is_noticed_within_seconds_and_nothing_is_lost(
        private_broker, caplog):
    """SIGSTOP cuts the connections silently (no close, no RST): only the AMQP heartbeat can
    tell. Both the service and the client must notice while the broker is still frozen, and
    after it continues they reconnect by themselves, and an event written during the freeze
    reaches its consumer once."""
    settings = Settings(namespace=NS, amqp_url=f"amqp://guest:guest@127.0.0.1:"
                        f"{private_broker.port}/", rpc_timeout_seconds=2,
                        outbox_poll_seconds=0.2, db_pool_size=4)
    heartbeat = settings.amqp_heartbeat_seconds
    noticed_within = (heartbeat + 1) * 3 + max(1, heartbeat // 2)  # aiormq's rule
    assert noticed_within + 3 < FREEZE_SECONDS
    caplog.set_level(logging.INFO, logger="ttms")
    async with running(settings) as (rpc, broker, db):
        assert await rpc.call("lv.note", {"key": "before"}, ALICE) == {"key": "before"}
        await wait_for(lambda: _rows(db, "effects", "before"), 10, what="the event before")

        private_broker.freeze()
        frozen = time.monotonic()
        try:
            # a call into the silent connection: nobody answers it
            with pytest.raises(errors.Timeout):
                await rpc.call("lv.note", {"key": "lost-call"}, ALICE, timeout=1)
            # an event committed during the freeze: the relay must deliver it later
            async with db.transaction() as tx:
                tx.emit(Noted(key="during"))
            await wait_for(lambda: broker.connection is None, FREEZE_SECONDS - 2,
                           what="the client to notice the frozen broker", interval=0.05)
            client_noticed = time.monotonic() - frozen
            await wait_for(lambda: "lv lost its broker connection" in caplog.text,
                           FREEZE_SECONDS - 2, what="the service to notice the frozen broker")
            service_noticed = time.monotonic() - frozen
            # noticed: calls are refused at once instead of waiting for their deadline
            started = time.monotonic()
            with pytest.raises(errors.ServiceUnavailable):
                await rpc.call("lv.count", {}, ALICE)
            refused_in = time.monotonic() - started
            await asyncio.sleep(max(0.0, FREEZE_SECONDS - (time.monotonic() - frozen)))
        finally:
            private_broker.thaw()
        thawed = time.monotonic()
        await wait_for(lambda: _answers(rpc), 30, what="the service to answer again")
        answering_after = time.monotonic() - thawed
        assert await rpc.call("lv.note", {"key": "after"}, ALICE) == {"key": "after"}
        for key in ("during", "after"):
            await wait_for(lambda k=key: _rows(db, "effects", k), 15, what=f"the event {key}")
        await asyncio.sleep(1)  # time for a duplicate to show up, were there one
        assert [await _rows(db, "effects", k) for k in ("before", "during", "after")] == [1, 1, 1]
        # the call nobody answered was not run late either: its deadline had passed
        assert await _rows(db, "notes", "lost-call") == 0
    print(f"\nheartbeat {heartbeat}s: client noticed after {client_noticed:.1f}s, service "
          f"after {service_noticed:.1f}s (bound {noticed_within}s); refused then in "
          f"{refused_in * 1000:.0f} ms; answering {answering_after:.1f}s after the thaw")
    assert client_noticed < noticed_within + 2
    assert service_noticed < noticed_within + 2
    assert refused_in < 0.2
    assert answering_after < 10


# -- a frozen database ----------------------------------------------------------------------

async def test_a_frozen_database_answers_503_fast_not_504_at_the_deadline(
        private_broker, private_database):
    """With the database frozen, every command would wait for its 5 s deadline (504). Once
    the watch has seen a statement hang (STALL_SECONDS, then a probe of PROBE_SECONDS), those
    waiting are answered 503 and new ones at once; after the thaw they are served again."""
    settings = Settings(namespace=NS, amqp_url=f"amqp://guest:guest@127.0.0.1:"
                        f"{private_broker.port}/", db_port=private_database.port,
                        db_user="root", rpc_timeout_seconds=5, outbox_poll_seconds=0.2,
                        db_pool_size=4)
    first_bound = STALL_SECONDS + PROBE_SECONDS + 2 * TICK_SECONDS

    async def timed(command: str, payload: dict[str, Any]) -> tuple[str, float]:
        started = time.monotonic()
        try:
            await rpc.call(command, payload, ALICE)
            outcome = "ok"
        except errors.ServiceError as exc:
            outcome = f"{exc.code} retry_after={exc.retry_after}"
        return outcome, time.monotonic() - started

    async with running(settings) as (rpc, broker, db):
        assert await rpc.call("lv.note", {"key": "before"}, ALICE) == {"key": "before"}
        private_database.freeze()
        try:
            first = await asyncio.gather(*(
                timed("lv.note", {"key": f"frozen-{n}"}) if n % 2 else timed("lv.count", {})
                for n in range(20)))
            then = await asyncio.gather(*(
                timed("lv.note", {"key": f"refused-{n}"}) if n % 2 else timed("lv.count", {})
                for n in range(20)))
        finally:
            private_database.thaw()
        thawed = time.monotonic()
        await wait_for(lambda: _answers(rpc), 10, what="answers after the thaw", interval=0.05)
        back_after = time.monotonic() - thawed
        assert await rpc.call("lv.count", {}, ALICE) == {"notes": 1}  # nothing half-written
        print(f"\nfrozen database: first answers {max(t for _, t in first):.2f}s (bound "
              f"{first_bound:.2f}s), then {max(t for _, t in then) * 1000:.0f} ms; served "
              f"again {back_after:.2f}s after the thaw")
    # 503 with Retry-After: 1 at the gateway (gateway/problems.py)
    assert {code for code, _ in first + then} == {"service_unavailable retry_after=1"}, \
        first + then
    assert max(t for _, t in first) < first_bound + 1.5  # not the 5 s deadline
    assert max(t for _, t in then) < 0.5
    assert back_after < 5


async def test_a_slow_statement_alone_is_not_taken_for_a_frozen_database(private_database):
    """The watch probes when a statement has waited STALL_SECONDS with nothing else done
    meanwhile; a server that is merely slow answers the probe, and nothing is refused."""
    settings = Settings(namespace=NS, db_port=private_database.port, db_user="root")
    await _create_database(settings)
    db = Database(settings, "lv")
    try:
        slow = asyncio.ensure_future(db.fetch("SELECT SLEEP(%s)", (STALL_SECONDS + 2,)))
        await asyncio.sleep(STALL_SECONDS + 1)
        assert not db.watch.unanswered
        assert await db.fetch("SELECT 1") == ((1,),)
        assert await slow == ((0,),)
        assert not db.watch.unanswered
    finally:
        await db.dispose()
        await _drop_database(settings)
