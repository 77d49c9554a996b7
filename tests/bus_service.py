"""The test service of tests/test_bus.py and tests/test_faults.py, and its ``bus`` fixture.

Everything here lives in its own namespace, ``<TTMS_TEST_NAMESPACE>_bus``: a test service
``bt`` runs in this process (``Service.main`` with a ``stop`` event) with a command handler and
an event subscriber, and a producer database ``bp`` has only an outbox, so that the tests drive
its ``OutboxRelay`` themselves (unreachable broker, restarts). A module that uses the fixture
imports ``bus_fixture`` (pytest finds fixtures by the module's names).
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import create_async_engine

from messages import errors
from messages.broker import Broker, delete_namespace
from messages.contracts.base import Command, Event
from messages.db import Database, inbox_table, outbox_table
from messages.rpc import RpcClient
from messages.service import Handlers, Service
from messages.settings import Settings
from tests.conftest import NAMESPACE
from tests.waiting import wait_for

NS = f"{NAMESPACE}_bus"
DELIVERY_LIMIT = 3
SETTINGS = Settings(namespace=NS, event_delivery_limit=DELIVERY_LIMIT, outbox_poll_seconds=0.2,
                    rpc_timeout_seconds=2, db_pool_size=5, log_level="INFO")
NAMES = SETTINGS.names
CLOSED_PORT_URL = "amqp://guest:guest@127.0.0.1:1/"  # nothing listens on port 1


# -- the test service -----------------------------------------------------------------------

class Echo(Command, name="bt.echo"):
    text: str = ""
    sleep: float = 0
    fail: str | None = None


class Pinged(Event, type="bt.pinged"):
    key: str
    mode: str = "ok"  # ok | fail


class Hello(Command, name="bt2.hello"):
    pass


handlers = Handlers()
CALLS: collections.Counter[str] = collections.Counter()     # command runs by text
ATTEMPTS: collections.Counter[str] = collections.Counter()  # event handler runs by key


@handlers.command(Echo)
async def echo(cmd: Echo, ctx) -> dict[str, Any]:
    CALLS[cmd.text] += 1
    if cmd.sleep:
        await asyncio.sleep(cmd.sleep)
    if cmd.fail == "conflict":
        raise errors.Conflict("that name is taken", details=[{"loc": ["body", "text"],
                                                               "msg": "duplicate"}])
    if cmd.fail == "not_found":
        raise errors.NotFound("no such thing")
    if cmd.fail == "bug":
        raise RuntimeError("a bug in the handler")
    if cmd.fail == "unserializable":
        return {"text": object()}
    return {"text": cmd.text, "user_id": ctx.caller.user_id, "role": ctx.caller.role}


@handlers.event(Pinged)
async def on_pinged(event: Pinged, tx, app) -> None:
    ATTEMPTS[event.key] += 1
    if event.mode == "fail":
        raise RuntimeError("this handler always fails")
    await tx.execute(text("INSERT INTO effects (event_key) VALUES (:k)"), {"k": event.key})


def tables(with_effects: bool) -> MetaData:
    metadata = MetaData()
    outbox_table(metadata)
    inbox_table(metadata)
    if with_effects:
        Table("effects", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
              Column("event_key", String(64), nullable=False, index=True))
    return metadata


DATABASES = ("bt", "bp", "bt2")


async def _each_database(*statements: str) -> None:
    """Run ``statements`` (``{db}`` is each test database's name) on the server."""
    engine = create_async_engine(SETTINGS.database_url("bt", with_database=False))
    try:
        async with engine.begin() as conn:
            for svc in DATABASES:
                for statement in statements:
                    await conn.execute(text(statement.format(db=SETTINGS.database_name(svc))))
    finally:
        await engine.dispose()


async def create_databases() -> None:
    await _each_database("DROP DATABASE IF EXISTS `{db}`", "CREATE DATABASE `{db}`")
    for svc in DATABASES:
        engine = create_async_engine(SETTINGS.database_url(svc))
        try:
            async with engine.begin() as conn:
                await conn.run_sync(tables(svc == "bt").create_all)
        finally:
            await engine.dispose()


async def drop_databases() -> None:
    await _each_database("DROP DATABASE IF EXISTS `{db}`")


async def delete_queues() -> None:
    await delete_namespace(SETTINGS.amqp_url, NAMES)


@asynccontextmanager
async def running_service(name: str, service_handlers: Handlers, settings: Settings = SETTINGS):
    """Run ``Service(name).main`` in this process until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(Service(name, service_handlers, settings).main(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


@dataclass
class Bus:
    broker: Broker
    rpc: RpcClient
    bt_db: Database   # the test service's database (its own relay publishes its outbox)
    bp_db: Database   # a producer database no process relays: the tests drive its relay
    amqp: aio_pika.abc.AbstractConnection  # a plain connection for publishing and peeking

    async def effects(self, key: str) -> int:
        async with self.bt_db.read() as conn:
            return (await conn.execute(text("SELECT COUNT(*) FROM effects WHERE event_key = :k"),
                                       {"k": key})).scalar_one()

    async def unsent(self, db: Database) -> int:
        async with db.read() as conn:
            return (await conn.execute(text(
                "SELECT COUNT(*) FROM outbox WHERE published_at IS NULL"))).scalar_one()

    async def publish_raw(self, body: bytes, routing_key: str = "bt.pinged",
                          message_id: str | None = None) -> None:
        channel = await self.amqp.channel()
        try:
            exchange = await channel.get_exchange(NAMES.events_exchange)
            await exchange.publish(aio_pika.Message(
                body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=routing_key)
        finally:
            await channel.close()

    async def dead_letters(self) -> list[bytes]:
        """Take every message off the test service's dead-letter queue."""
        channel = await self.amqp.channel()
        bodies = []
        try:
            queue = await channel.get_queue(NAMES.dead_letter_queue("bt"))
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                bodies.append(message.body)
        finally:
            await channel.close()
        return bodies


@pytest.fixture(scope="module", name="bus")
async def bus_fixture():
    await create_databases()
    await delete_queues()
    broker = Broker(SETTINGS.amqp_url, f"{NS}-test")
    rpc = RpcClient(broker, NAMES, timeout=2)
    async with running_service("bt", handlers):
        await broker.start()
        await wait_for(lambda: pings(rpc, "bt"), 20, 0.2, "the bt service")
        amqp = await aio_pika.connect(SETTINGS.amqp_url)
        bus = Bus(broker, rpc, Database(SETTINGS, "bt"), Database(SETTINGS, "bp"), amqp)
        try:
            yield bus
        finally:
            await amqp.close()
            await broker.stop()
            await bus.bt_db.dispose()
            await bus.bp_db.dispose()
    await delete_queues()
    await drop_databases()


async def pings(rpc: RpcClient, service: str) -> bool:
    try:
        await rpc.ping(service, timeout=0.5)
        return True
    except errors.ServiceError:
        return False


ANYONE = {"user_id": None, "role": None}
ALICE = {"user_id": 7, "role": "customer"}


def key() -> str:
    return uuid.uuid4().hex[:16]
