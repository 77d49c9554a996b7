"""The message bus itself (messages/broker.py, rpc.py, events.py, db.py) against the real
RabbitMQ and MariaDB, without the gateway.

The test service ``bt``, its databases and the ``bus`` fixture are in tests/bus_service.py.

The broker-restart tests are in tests/test_faults.py (they use the ``bus`` fixture too).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import create_async_engine

from messages import errors
from messages.broker import Broker
from messages.contracts.base import Command, Envelope, Event
from messages.db import Database
from messages.events import EventHandler, Listener, OutboxRelay, Subscriber
from messages.rpc import RpcClient
from messages.service import Handlers
from tests.bus_service import (  # noqa: F401 - bus_fixture is the fixture `bus`
    ALICE,
    ANYONE,
    ATTEMPTS,
    CALLS,
    CLOSED_PORT_URL,
    DELIVERY_LIMIT,
    NAMES,
    NS,
    SETTINGS,
    Bus,
    Echo,
    Hello,
    Pinged,
    bus_fixture,
    create_databases,
    delete_queues,
    drop_databases,
    handlers,
    key,
    pings,
    running_service,
    tables,
    wait_for,
)
from tests.conftest import NAMESPACE, ROOT

# -- RPC ------------------------------------------------------------------------------------

async def test_call_returns_the_reply_with_the_caller(bus):
    assert await bus.rpc.call("bt.echo", {"text": "hi"}, ALICE) == {
        "text": "hi", "user_id": 7, "role": "customer"}
    assert await bus.rpc.call("bt.echo", Echo(text="model"), ANYONE) == {
        "text": "model", "user_id": None, "role": None}


async def test_typed_errors_arrive_as_the_same_class(bus):
    with pytest.raises(errors.Conflict) as conflict:
        await bus.rpc.call("bt.echo", {"fail": "conflict"}, ALICE)
    assert conflict.value.message == "that name is taken"
    assert conflict.value.details == [{"loc": ["body", "text"], "msg": "duplicate"}]
    with pytest.raises(errors.NotFound):
        await bus.rpc.call("bt.echo", {"fail": "not_found"}, ALICE)
    with pytest.raises(errors.ValidationFailed) as invalid:
        await bus.rpc.call("bt.echo", {"text": "x", "nope": 1}, ALICE)
    assert invalid.value.details[0]["loc"] == ["nope"]
    with pytest.raises(errors.BadRequest):
        await bus.rpc.call("bt.no_such_command", {}, ALICE)


async def test_a_refused_call_is_freed_without_the_cyclic_collector(bus):
    """Most calls of a rush are refused. Had the error, its traceback and the caller's frame
    formed a cycle, each refused request (with everything its frames hold) would wait for the
    cyclic collector, whose pauses under that load were the gateway's slowest answers."""
    refused = 0
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(20):
            try:
                await bus.rpc.call("bt.echo", {"fail": "conflict"}, ALICE)
            except errors.Conflict:
                refused += 1
        gc.collect()
        cycles = [o for o in gc.garbage
                  if inspect.isframe(o) and o.f_code.co_name == "call"
                  or isinstance(o, errors.ServiceError)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert refused == 20
    assert cycles == []


async def test_handler_bug_is_an_internal_error_reply_not_a_hang(bus):
    started = time.monotonic()
    with pytest.raises(errors.InternalError):
        await bus.rpc.call("bt.echo", {"fail": "bug"}, ALICE)
    assert time.monotonic() - started < 1.0
    # a reply that cannot be serialized is a bug too: internal, never a hung caller; and the
    # command is acked, so that the prefetch window does not fill up with stuck commands.
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(errors.InternalError):
            await bus.rpc.call("bt.echo", {"fail": "unserializable"}, ALICE)
        assert time.monotonic() - started < 1.0
    assert await bus.rpc.call("bt.echo", {"text": "still fine"}, ALICE) == {
        "text": "still fine", "user_id": 7, "role": "customer"}


async def test_command_without_a_caller_is_refused(bus):
    text_ = f"anon-{key()}"
    with pytest.raises(errors.Unauthorized):
        await bus.rpc.call("bt.echo", {"text": text_}, None)
    assert CALLS[text_] == 0
    # ping is answered by the RPC layer itself and needs no caller
    assert (await bus.rpc.ping("bt"))["service"] == "bt"


async def test_deadline_raises_timeout_at_the_deadline(bus):
    started = time.monotonic()
    with pytest.raises(errors.Timeout):
        await bus.rpc.call("bt.echo", {"text": "slow", "sleep": 2}, ALICE, timeout=0.5)
    assert 0.45 < time.monotonic() - started < 0.9


async def test_command_message_expires_when_nobody_consumes(bus):
    """The message's ``expiration`` is the deadline: the broker drops a command that nobody
    took in time, so a service coming back later never runs what its caller gave up on."""
    queue_name = NAMES.rpc_queue("spy")
    channel = await bus.amqp.channel()
    queue = await channel.declare_queue(queue_name, durable=True)
    seen: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def spy(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.append(message)

    tag = await queue.consume(spy, no_ack=True)
    assert await _consumer_count(bus, "spy") == 1  # the client now knows it has a consumer
    with pytest.raises(errors.Timeout):
        await bus.rpc.call("spy.anything", {"x": 1}, ALICE, timeout=0.5)
    assert len(seen) == 1
    ttl_ms = seen[0].expiration * 1000  # aio-pika decodes it to seconds
    assert 300 <= ttl_ms <= 500, seen[0].expiration
    assert orjson.loads(seen[0].body)[0][1] == "spy.anything"
    # nobody consuming: the client still believes there is a consumer (it polls once a second),
    # so it publishes; the caller times out and the broker drops the message at its deadline.
    await queue.cancel(tag)
    with pytest.raises(errors.Timeout):
        await bus.rpc.call("spy.anything", {"x": 2}, ALICE, timeout=0.3)
    await asyncio.sleep(0.2)
    declared = await channel.declare_queue(queue_name, durable=True)
    assert declared.declaration_result.message_count == 0
    await channel.queue_delete(queue_name)
    await channel.close()


async def _consumer_count(bus: Bus, service: str) -> int:
    bus.rpc._watch.add(service)
    await bus.rpc._refresh_consumers()  # what watch_services does every second
    return bus.rpc._consumers.get(service, -1)


async def test_service_without_consumers_is_unavailable_at_once(bus):
    # a queue exists but nobody consumes it: the first call already knows
    channel = await bus.amqp.channel()
    await channel.declare_queue(NAMES.rpc_queue("ghost"), durable=True)
    for service in ("ghost", f"never{key()[:6]}"):  # and a service never seen anywhere
        for attempt in range(2):
            started = time.monotonic()
            with pytest.raises(errors.ServiceUnavailable):
                await bus.rpc.call(f"{service}.anything", {}, ALICE, timeout=2)
            assert time.monotonic() - started < 0.5, (service, attempt)
        await channel.queue_delete(NAMES.rpc_queue(service))
    await channel.close()


async def test_a_service_that_stops_is_unavailable_within_the_watch_interval(bus):
    other = Handlers()

    @other.command(Hello)
    async def hello(cmd, ctx):
        return {"hello": True}

    watcher = asyncio.create_task(bus.rpc.watch_services(interval=0.5))
    try:
        async with running_service("bt2", other):
            await wait_for(lambda: pings(bus.rpc, "bt2"), 20, 0.2, "bt2")
            assert await bus.rpc.call("bt2.hello", {}, ALICE) == {"hello": True}
        stopped = time.monotonic()

        # A call already on its way when the service went (or sent before the watcher saw
        # it go) waits for its deadline: it may still run if the service comes back in time.
        # Once the watcher has seen no consumer, calls answer 503 at once.
        answered: list[float] = []

        async def unavailable() -> bool:
            started = time.monotonic()
            try:
                await bus.rpc.call("bt2.hello", {}, ALICE, timeout=0.3)
            except errors.ServiceUnavailable:
                answered.append(time.monotonic() - started)
                return True
            except errors.Timeout:
                return False
            return False

        await wait_for(unavailable, 5, 0.05, "503 from a stopped service")
        assert time.monotonic() - stopped < 1.5
        assert answered[0] < 0.25
        async with running_service("bt2", other):
            await wait_for(lambda: pings(bus.rpc, "bt2"), 5, 0.1, "bt2 back")
            assert await bus.rpc.call("bt2.hello", {}, ALICE) == {"hello": True}
    finally:
        watcher.cancel()
        channel = await bus.amqp.channel()
        await channel.queue_delete(NAMES.rpc_queue("bt2"))
        await channel.close()


async def test_malformed_command_messages_are_dropped_without_wedging_the_server(bus):
    """More malformed messages than the prefetch window: if any stayed unacked the server
    would stop receiving commands."""
    channel = await bus.amqp.channel()
    bodies = [b"not json", b'{"a": 1}', b"[[1, 2]]", b"[42]", b'[["id", "bt.echo"]]', b"7",
              b'[["i", "bt.echo", "soon", null, {}]]']
    for n in range(70):
        await channel.default_exchange.publish(
            aio_pika.Message(bodies[n % len(bodies)], expiration=30),
            routing_key=NAMES.rpc_queue("bt"))
    await channel.close()
    replies = await asyncio.gather(*(bus.rpc.call("bt.echo", {"text": f"after {n}"}, ALICE)
                                     for n in range(5)))
    assert [r["text"] for r in replies] == [f"after {n}" for n in range(5)]


@contextmanager
def calls_per_message(rpc: RpcClient) -> Iterator[list[int]]:
    """How many calls each AMQP message that ``rpc`` publishes in the block carries."""
    published: list[int] = []
    original = rpc._publish

    async def counting(service, calls):
        published.append(len(calls))
        await original(service, calls)

    rpc._publish = counting
    try:
        yield published
    finally:
        del rpc._publish


async def test_concurrent_calls_are_batched_and_all_answered(bus):
    with calls_per_message(bus.rpc) as published:
        results = await asyncio.gather(*(
            bus.rpc.call("bt.echo", {"text": f"n{n}"}, {"user_id": n, "role": "customer"})
            for n in range(300)))
    assert [r["text"] for r in results] == [f"n{n}" for n in range(300)]
    assert [r["user_id"] for r in results] == list(range(300))
    assert sum(published) == 300
    assert len(published) < 10, published  # several commands per AMQP message
    # and mixed outcomes in one batch each reach their own caller
    outcomes = await asyncio.gather(
        bus.rpc.call("bt.echo", {"text": "a"}, ALICE),
        bus.rpc.call("bt.echo", {"fail": "conflict"}, ALICE),
        bus.rpc.call("bt.echo", {"fail": "bug"}, ALICE),
        bus.rpc.call("bt.echo", {"text": "b"}, ALICE),
        return_exceptions=True)
    assert outcomes[0]["text"] == "a" and outcomes[3]["text"] == "b"
    assert isinstance(outcomes[1], errors.Conflict)
    assert isinstance(outcomes[2], errors.InternalError)


async def test_a_slow_command_does_not_hold_back_the_others_in_its_message(bus):
    """Calls made together travel in one message; each reply still leaves when its own
    command is done, not when the slowest of the message is."""
    async def timed(payload: dict[str, Any]) -> float:
        started = time.monotonic()
        await bus.rpc.call("bt.echo", payload, ALICE, timeout=5)
        return time.monotonic() - started

    with calls_per_message(bus.rpc) as published:
        slow, *fast = await asyncio.gather(timed({"text": "slow", "sleep": 1.5}),
                                           *(timed({"text": f"f{n}"}) for n in range(5)))
    assert published == [6]  # one message
    assert slow >= 1.5
    assert max(fast) < 0.7, fast


async def test_commands_are_handled_concurrently(bus):
    started = time.monotonic()
    await asyncio.gather(*(bus.rpc.call("bt.echo", {"text": f"c{n}", "sleep": 0.5}, ALICE)
                           for n in range(40)))
    assert time.monotonic() - started < 1.5


class Hang(Command, name="bt2.hang"):
    seconds: float = 3600


async def test_a_handler_past_its_deadline_is_cancelled_and_frees_its_slot(bus):
    """More hanging commands than the server's prefetch window (64 messages), each in a
    message of its own: if a handler could run for ever past its deadline, these would hold
    every slot and the server would take no command again."""
    hanging = Handlers()
    cancelled: list[float] = []

    @hanging.command(Hang)
    async def hang(cmd, ctx):
        try:
            await asyncio.sleep(cmd.seconds)
        except asyncio.CancelledError:
            cancelled.append(time.monotonic())
            raise
        return {}

    @hanging.command(Hello)
    async def hello(cmd, ctx):
        return {"hello": True}

    try:
        async with running_service("bt2", hanging):
            await wait_for(lambda: pings(bus.rpc, "bt2"), 20, 0.2, "bt2")
            calls = []
            started = time.monotonic()
            for _ in range(70):
                calls.append(asyncio.ensure_future(
                    bus.rpc.call("bt2.hang", {}, ALICE, timeout=1)))
                await asyncio.sleep(0.005)  # one message each: the window counts messages
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
            assert all(isinstance(o, errors.Timeout) for o in outcomes), outcomes
            # deadline 1 s + grace 1 s: every slot is free again soon after
            assert await bus.rpc.call("bt2.hello", {}, ALICE, timeout=4) == {"hello": True}
            assert time.monotonic() - started < 6
            # the window's 64 were started, and each is cancelled a second after its deadline
            # (the rest waited in the queue behind them: expired there, or not started late)
            await wait_for(lambda: len(cancelled) >= 64, 5, 0.05, "the hanging handlers cancelled")
            assert max(cancelled) - started < 7
    finally:
        channel = await bus.amqp.channel()
        await channel.queue_delete(NAMES.rpc_queue("bt2"))
        await channel.close()


async def test_a_command_taken_after_its_deadline_is_not_started(bus):
    """The broker's expiration covers a command only while it is queued: one that reaches
    the service already late (here: published with a past deadline and no expiration, as a
    prefetched command that waited in the consumer) is answered ``timeout``, never run."""
    text_ = key()
    channel = await bus.amqp.channel()
    replies = await channel.declare_queue(exclusive=True, auto_delete=True)
    await channel.default_exchange.publish(aio_pika.Message(
        orjson.dumps([["late-1", "bt.echo", int(time.time() * 1000) - 1000, ALICE,
                       {"text": text_}]]), reply_to=replies.name),
        routing_key=NAMES.rpc_queue("bt"))
    message = None
    for _ in range(100):
        message = await replies.get(fail=False, no_ack=True)
        if message is not None:
            break
        await asyncio.sleep(0.05)
    await channel.close()
    assert message is not None, "no reply"
    [[call_id, ok, error]] = orjson.loads(message.body)
    assert (call_id, ok, error["code"]) == ("late-1", 0, "timeout")
    assert CALLS[text_] == 0


async def test_broker_unreachable_means_503_at_once():
    broker = Broker(CLOSED_PORT_URL, f"{NS}-nowhere")
    rpc = RpcClient(broker, NAMES, timeout=2)
    await broker.start(wait=0.3)
    try:
        started = time.monotonic()
        with pytest.raises(errors.ServiceUnavailable):
            await rpc.call("bt.echo", {}, ALICE)
        assert time.monotonic() - started < 0.1
    finally:
        await broker.stop()


# -- events ---------------------------------------------------------------------------------

async def _relay(url: str, db: Database, name: str):
    broker = Broker(url, f"{NS}-{name}")
    relay = OutboxRelay(broker, NAMES, db, poll=0.2)
    task = asyncio.create_task(relay.run())
    await broker.start(wait=2)
    return broker, task


async def _stop_relay(broker: Broker, task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await broker.stop()


async def test_outbox_relay_publishes_and_marks_sent(bus):
    keys = [key() for _ in range(3)]
    async with bus.bp_db.transaction() as tx:
        envelopes = [tx.emit(Pinged(key=k)) for k in keys]
    broker, task = await _relay(SETTINGS.amqp_url, bus.bp_db, "relay")
    try:
        for k in keys:
            await wait_for(lambda k=k: bus.effects(k), 10, what=f"effect of {k}")
        await wait_for(lambda: _all_sent(bus.bp_db, [e.id for e in envelopes]), 5)
    finally:
        await _stop_relay(broker, task)


async def _all_sent(db: Database, event_ids: list[str]) -> bool:
    async with db.read() as conn:
        rows = (await conn.execute(text(
            "SELECT published_at FROM outbox WHERE event_id IN :ids").bindparams(
            bindparam("ids", expanding=True)),
            {"ids": event_ids})).all()
    return len(rows) == len(event_ids) and all(r.published_at is not None for r in rows)


async def test_rolled_back_transaction_emits_nothing(bus):
    k = key()
    with pytest.raises(RuntimeError):
        async with bus.bt_db.transaction() as tx:
            tx.emit(Pinged(key=k))
            raise RuntimeError("roll back")
    async with bus.bt_db.read() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM outbox WHERE body LIKE :k"),
                                   {"k": f"%{k}%"})).scalar_one() == 0


async def test_event_written_while_the_broker_is_unreachable_is_delivered_later(bus):
    # the relay's broker points at a closed port: the events wait in the outbox
    broker, task = await _relay(CLOSED_PORT_URL, bus.bp_db, "relay-down")
    keys = [key() for _ in range(3)]
    try:
        for k in keys:
            async with bus.bp_db.transaction() as tx:
                tx.emit(Pinged(key=k))
        await asyncio.sleep(1.0)
        assert await bus.unsent(bus.bp_db) == 3
        assert [await bus.effects(k) for k in keys] == [0, 0, 0]
    finally:
        await _stop_relay(broker, task)
    # the broker is reachable again (a relay with the right address): they arrive, once
    broker, task = await _relay(SETTINGS.amqp_url, bus.bp_db, "relay-up")
    try:
        for k in keys:
            await wait_for(lambda k=k: bus.effects(k), 10, what=f"effect of {k}")
        await wait_for(lambda: _no_unsent(bus, bus.bp_db), 5)
        assert [await bus.effects(k) for k in keys] == [1, 1, 1]
    finally:
        await _stop_relay(broker, task)


async def _no_unsent(bus: Bus, db: Database) -> bool:
    return await bus.unsent(db) == 0


async def test_relay_reconnects_when_the_broker_closes_its_connection(bus):
    broker, task = await _relay(SETTINGS.amqp_url, bus.bp_db, "relay-closed")
    try:
        first = key()
        async with bus.bp_db.transaction() as tx:
            tx.emit(Pinged(key=first))
        await wait_for(lambda: bus.effects(first), 10, what="first effect")
        connection = broker.connection
        assert await close_connections(f"{NS}-relay-closed") == 1
        await wait_for(lambda: broker.connection is not connection, 5, what="the close")
        second = key()
        async with bus.bp_db.transaction() as tx:
            tx.emit(Pinged(key=second))
        await wait_for(lambda: bus.effects(second), 15, what="effect after the close")
    finally:
        await _stop_relay(broker, task)


async def close_connections(prefix: str) -> int:
    """Close, from the broker's side, every connection whose name starts with ``prefix``."""
    listed = await asyncio.to_thread(
        subprocess.run, ["rabbitmqctl", "list_connections", "-q", "--no-table-headers",
                         "pid", "client_properties"],
        capture_output=True, text=True, timeout=60)
    pids = [line.split("\t", 1)[0] for line in listed.stdout.splitlines()
            if f'{{"connection_name","{prefix}' in line]
    for pid in pids:
        await asyncio.to_thread(
            subprocess.run, ["rabbitmqctl", "close_connection", pid, "closed by a test"],
            capture_output=True, text=True, timeout=60)
    return len(pids)


RELAY_SCRIPT = """
import asyncio, os, sys
from messages.db import Database
from messages.settings import Settings
from tests.bus_service import Pinged, SETTINGS

async def main():
    db = Database(SETTINGS, "bp")
    async with db.transaction() as tx:
        for k in sys.argv[1:]:
            tx.emit(Pinged(key=k))
    print("committed", flush=True)
    os._exit(0)  # dies before any relay could publish

asyncio.run(main())
"""


async def test_relay_catches_up_after_a_process_restart(bus):
    keys = [key() for _ in range(4)]
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", RELAY_SCRIPT, *keys], cwd=ROOT,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TTMS_TEST_NAMESPACE": NAMESPACE})
    assert "committed" in done.stdout, done.stderr
    assert await bus.unsent(bus.bp_db) == 4
    broker, task = await _relay(SETTINGS.amqp_url, bus.bp_db, "relay-restarted")
    try:
        for k in keys:
            await wait_for(lambda k=k: bus.effects(k), 10, what=f"effect of {k}")
    finally:
        await _stop_relay(broker, task)


async def test_redelivered_event_has_no_second_effect(bus):
    k = key()
    envelope = Envelope.wrap(Pinged(key=k), "bp")
    body = orjson.dumps(envelope.model_dump(mode="json"))
    # twice at once, then once more after it was handled
    await asyncio.gather(bus.publish_raw(body, message_id=envelope.id),
                         bus.publish_raw(body, message_id=envelope.id))
    await wait_for(lambda: bus.effects(k), 10, what="the effect")
    await bus.publish_raw(body, message_id=envelope.id)
    # the same event twice in the outbox (a relay that published but died before marking it)
    async with bus.bp_db.transaction() as tx:
        await tx.execute(text(
            "INSERT INTO outbox (event_id, routing_key, body, created_at) "
            "VALUES (:id, 'bt.pinged', :body, NOW(6)), (:id, 'bt.pinged', :body, NOW(6))"),
            {"id": envelope.id, "body": body})
    broker, task = await _relay(SETTINGS.amqp_url, bus.bp_db, "relay-twice")
    try:
        await wait_for(lambda: _no_unsent(bus, bus.bp_db), 10)
    finally:
        await _stop_relay(broker, task)
    await asyncio.sleep(0.5)
    assert await bus.effects(k) == 1
    assert ATTEMPTS[k] == 1


async def test_failing_handler_is_dead_lettered_and_the_next_events_flow(bus):
    bad, good = key(), [key() for _ in range(5)]
    async with bus.bt_db.transaction() as tx:  # the bt service relays its own outbox
        tx.emit(Pinged(key=bad, mode="fail"))
        for k in good:
            tx.emit(Pinged(key=k))
    for k in good:
        await wait_for(lambda k=k: bus.effects(k), 10, what=f"effect of {k}")
    dead = await wait_for(bus.dead_letters, 15, 0.2, "the dead letter")
    assert [orjson.loads(b)["data"]["key"] for b in dead] == [bad]
    # RabbitMQ 3.10 dead-letters once the count of *re*deliveries exceeds x-delivery-limit:
    # the first delivery and then x-delivery-limit more
    assert ATTEMPTS[bad] == DELIVERY_LIMIT + 1, ATTEMPTS[bad]
    assert await bus.effects(bad) == 0


async def test_malformed_event_is_dead_lettered_at_once(bus):
    k = key()
    wrong_data = Envelope(type="bt.pinged", producer="bp", data={"key": k, "mode": ["x"]})
    await bus.publish_raw(b"{not json")
    await bus.publish_raw(orjson.dumps({"type": "bt.pinged"}))  # no envelope
    await bus.publish_raw(orjson.dumps(wrong_data.model_dump(mode="json")))
    dead = await wait_for(bus.dead_letters, 5, 0.1, "dead letters")
    while len(dead) < 3:
        dead += await wait_for(bus.dead_letters, 5, 0.1, "more dead letters")
    assert b"{not json" in dead and len(dead) == 3
    assert ATTEMPTS[k] == 0


class Other(Event, type="bt.other"):
    key: str


async def _applied_once_the_database_is_back(bus: Bus, db: Database, consumer: str,
                                             handler: EventHandler, event: Event,
                                             attempts: collections.Counter[str],
                                             database_back) -> None:
    """``event`` reaches the subscriber ``consumer`` (delivery limit 2) while its database
    ``db`` is unreachable: no attempt gets through and nothing is dead-lettered however many
    deliveries that takes; once ``database_back()`` ran, it is applied once."""
    broker = Broker(SETTINGS.amqp_url, f"{NS}-{consumer}")
    Subscriber(broker, NAMES, db, consumer, {event.type: handler}, delivery_limit=2)
    await broker.start()
    try:
        await bus.publish_raw(orjson.dumps(Envelope.wrap(event, "bp").model_dump(mode="json")),
                              routing_key=event.type)
        await asyncio.sleep(3)  # several failed attempts, more than the delivery limit
        assert attempts[event.key] == 0 and await bus.effects(f"{consumer}:{event.key}") == 0
        await database_back()
        await wait_for(lambda: bus.effects(f"{consumer}:{event.key}"), 10, 0.1, "the effect")
        assert attempts[event.key] == 1
        assert await _dead_letters_of(bus, consumer) == []
    finally:
        await broker.stop()
        await db.dispose()


async def test_database_outage_is_retried_in_place_not_dead_lettered(bus):
    """A subscriber whose database is unreachable keeps the event and tries again, without
    using up deliveries; once the database answers, the event is handled once."""
    attempts: collections.Counter[str] = collections.Counter()

    async def on_other(event: Other, tx) -> None:
        attempts[event.key] += 1
        await tx.execute(text("INSERT INTO effects (event_key) VALUES (:k)"),
                         {"k": f"bt3:{event.key}"})

    db = Database(SETTINGS, "bt")
    working = db.engine
    db.engine = create_async_engine(SETTINGS.database_url("bt").replace(
        f":{SETTINGS.db_port}/", ":1/"))  # nothing listens there

    async def database_back() -> None:
        await db.engine.dispose()
        db.engine = working

    await _applied_once_the_database_is_back(bus, db, "bt3", EventHandler(Other, on_other),
                                             Other(key=key()), attempts, database_back)


# -- events of plain handlers: several per transaction ----------------------------------------

class Counted(Event, type="bt.counted"):
    key: str
    mode: str = "ok"  # ok | fail | gate (waits for the test) | lock (rows, then more rows)
    rows: list[int] = []


@dataclass
class PlainService:
    """A Subscriber of plain handlers (consumer ``bt4``) on the bt database: each event adds
    an effect row ``bt4:<key>``; the test opens and closes a gate to hold the one batch slot
    while the next events gather behind it."""

    subscriber: Subscriber
    db: Database
    gate: asyncio.Event
    waiting_at_gate: asyncio.Event
    locking: asyncio.Event
    transactions: collections.defaultdict  # key -> ids of the transactions that ran it

    def attempts(self, k: str) -> int:
        return len(self.transactions[k])

    async def gathered(self, n: int) -> bool:
        return len(self.subscriber._waiting) >= n


async def _counted_handler(service: PlainService, event: Counted, tx) -> None:
    service.transactions[event.key].append(id(tx))
    if event.mode == "gate":
        service.waiting_at_gate.set()
        await service.gate.wait()
    if event.mode == "fail":
        raise RuntimeError("this handler always fails")
    for n, row in enumerate(event.rows):
        if n == len(event.rows) - 1:
            service.locking.set()
        await tx.execute("SELECT id FROM effects WHERE id = :id FOR UPDATE", {"id": row})
    tx.later("INSERT INTO effects (event_key) VALUES (:k)", {"k": f"bt4:{event.key}"})


@pytest.fixture(scope="module")
async def plain(bus):
    db = Database(SETTINGS, "bt")
    broker = Broker(SETTINGS.amqp_url, f"{NS}-bt4")
    service = PlainService(None, db, asyncio.Event(), asyncio.Event(), asyncio.Event(),
                           collections.defaultdict(list))

    async def on_counted(event: Counted, tx) -> None:
        await _counted_handler(service, event, tx)

    service.subscriber = Subscriber(
        broker, NAMES, db, "bt4", {"bt.counted": EventHandler(Counted, on_counted, plain=True)},
        delivery_limit=DELIVERY_LIMIT)
    await broker.start()
    try:
        yield service
    finally:
        service.gate.set()
        await broker.stop()
        await db.dispose()


async def _publish_counted(bus: Bus, *events: Counted | Envelope) -> list[Envelope]:
    envelopes = [e if isinstance(e, Envelope) else Envelope.wrap(e, "bp") for e in events]
    for envelope in envelopes:
        await bus.publish_raw(orjson.dumps(envelope.model_dump(mode="json")),
                              routing_key="bt.counted", message_id=envelope.id)
    return envelopes


async def _held_at_the_gate(bus: Bus, plain: PlainService) -> str:
    """Occupy the batch slot with an event that waits for ``plain.gate``."""
    plain.gate.clear()
    plain.waiting_at_gate.clear()
    gate = key()
    await _publish_counted(bus, Counted(key=gate, mode="gate"))
    await wait_for(plain.waiting_at_gate.is_set, 10, what="the gate event's batch")
    return gate


async def _dead_letters_of(bus: Bus, consumer: str) -> list[bytes]:
    channel = await bus.amqp.channel()
    bodies = []
    try:
        queue = await channel.get_queue(NAMES.dead_letter_queue(consumer))
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            bodies.append(message.body)
    finally:
        await channel.close()
    return bodies


async def test_a_lone_plain_event_is_applied_at_once(bus, plain):
    k = key()
    started = time.monotonic()
    await _publish_counted(bus, Counted(key=k))
    await wait_for(lambda: bus.effects(f"bt4:{k}"), 5, 0.01, "the effect")
    assert time.monotonic() - started < 1.0


async def test_events_that_wait_together_share_a_transaction_and_a_duplicate_is_skipped(
        bus, plain):
    """Events gathered behind a busy batch go in one transaction; one of them applied before
    (in the inbox) and another delivered twice within the batch each apply once."""
    before = key()
    [applied_before] = await _publish_counted(bus, Counted(key=before))
    await wait_for(lambda: bus.effects(f"bt4:{before}"), 10, what="the earlier event")
    gate = await _held_at_the_gate(bus, plain)
    first, second = key(), key()
    [once] = await _publish_counted(bus, Counted(key=first))
    await _publish_counted(bus, applied_before, Counted(key=second), once)
    await wait_for(lambda: plain.gathered(4), 10, what="four events behind the gate")
    plain.gate.set()
    for k in (gate, first, second):
        await wait_for(lambda k=k: bus.effects(f"bt4:{k}"), 10, what=f"effect of {k}")
    await asyncio.sleep(0.5)
    assert [await bus.effects(f"bt4:{k}") for k in (before, first, second)] == [1, 1, 1]
    # The four were tried in one transaction first, and rolled back when the claim found
    # fewer new events than four; then claimed one at a time in the next, where the handler
    # of the earlier event did not run again, nor the twice-delivered one's a second time.
    assert plain.transactions[first][0] == plain.transactions[second][0]
    assert plain.attempts(before) == 1 + 1
    assert plain.attempts(first) == 2 + 1
    assert plain.attempts(second) == 1 + 1
    assert await _dead_letters_of(bus, "bt4") == []
    assert not plain.subscriber._unsettled  # all acked


async def test_a_failing_event_in_a_batch_is_dead_lettered_and_the_others_apply_once(
        bus, plain):
    gate = await _held_at_the_gate(bus, plain)
    good, bad = [key() for _ in range(4)], key()
    await _publish_counted(bus, Counted(key=good[0]), Counted(key=good[1]),
                           Counted(key=bad, mode="fail"), Counted(key=good[2]),
                           Counted(key=good[3]))
    await wait_for(lambda: plain.gathered(5), 10, what="five events behind the gate")
    plain.gate.set()
    dead = await wait_for(lambda: _dead_letters_of(bus, "bt4"), 20, 0.2, "the dead letter")
    assert [orjson.loads(b)["data"]["key"] for b in dead] == [bad]
    assert [await bus.effects(f"bt4:{k}") for k in [gate, *good, bad]] == [1, 1, 1, 1, 1, 0]
    # one transaction until the bad event failed it, then each event in its own
    assert len({plain.transactions[k][0] for k in [*good[:2], bad]}) == 1
    assert [plain.attempts(k) for k in good] == [2, 2, 1, 1]
    # every delivery of the bad event ran its handler: alone, or in a batch and then alone
    assert plain.attempts(bad) >= DELIVERY_LIMIT + 1


async def test_a_batch_that_loses_a_deadlock_is_applied_again_in_place(bus, plain):
    """The batch's first event locks row A, then B; another transaction holds B and then
    asks for A. The database rolls the batch back (the other did more work); the batch is
    tried again, not dead-lettered, and every event in it is applied once."""
    async with bus.bt_db.transaction() as tx:
        a = (await tx.execute(text("INSERT INTO effects (event_key) VALUES ('row a')"))).lastrowid
        b = (await tx.execute(text("INSERT INTO effects (event_key) VALUES ('row b')"))).lastrowid
    async with bus.bt_db.engine.connect() as conn:
        transaction = await conn.begin()
        # more work than the batch, so that the batch is the deadlock's victim
        await conn.execute(text("INSERT INTO effects (event_key) VALUES (:k)"),
                           [{"k": f"heavy {n}"} for n in range(200)])
        await conn.execute(text("SELECT id FROM effects WHERE id = :id FOR UPDATE"), {"id": b})
        gate = await _held_at_the_gate(bus, plain)
        locker, rest = key(), [key(), key()]
        plain.locking.clear()
        await _publish_counted(bus, Counted(key=locker, mode="lock", rows=[a, b]),
                               *(Counted(key=k) for k in rest))
        await wait_for(lambda: plain.gathered(3), 10, what="three events behind the gate")
        plain.gate.set()
        await wait_for(plain.locking.is_set, 10, what="the batch taking row a")
        await asyncio.sleep(0.3)  # its request for row b is waiting
        await conn.execute(text("SELECT id FROM effects WHERE id = :id FOR UPDATE"), {"id": a})
        await transaction.rollback()
    for k in [gate, locker, *rest]:
        await wait_for(lambda k=k: bus.effects(f"bt4:{k}"), 10, what=f"effect of {k}")
    await asyncio.sleep(0.3)
    assert [await bus.effects(f"bt4:{k}") for k in [locker, *rest]] == [1, 1, 1]
    assert plain.attempts(locker) == 2  # the deadlocked batch, then the same batch again
    assert [plain.attempts(k) for k in rest] == [1, 1]  # the first try never reached them
    assert await _dead_letters_of(bus, "bt4") == []


async def test_a_batch_whose_connection_closes_meanwhile_applies_once(bus, plain):
    """The broker closes the connection while a batch is being applied and another event
    waits: the batch commits but cannot be acked; both events come again on the new
    connection, the inbox skips the one applied, the other is applied once."""
    gate = await _held_at_the_gate(bus, plain)
    k = key()
    await _publish_counted(bus, Counted(key=k))
    await wait_for(lambda: plain.gathered(1), 10, what="an event behind the gate")
    channel = plain.subscriber._channel
    assert await close_connections(f"{NS}-bt4") == 1
    await wait_for(lambda: plain.subscriber._channel not in (None, channel), 15, 0.05,
                   "a new channel")
    plain.gate.set()
    for each in (gate, k):
        await wait_for(lambda each=each: bus.effects(f"bt4:{each}"), 15, what=f"effect of {each}")
    await asyncio.sleep(1.0)
    assert [await bus.effects(f"bt4:{each}") for each in (gate, k)] == [1, 1]
    assert await _dead_letters_of(bus, "bt4") == []


class Waited(Event, type="bt.waited"):
    key: str


async def test_plain_events_wait_out_a_database_outage(bus):
    attempts: collections.Counter[str] = collections.Counter()

    async def on_waited(event: Waited, tx) -> None:
        attempts[event.key] += 1
        tx.later("INSERT INTO effects (event_key) VALUES (:k)", {"k": f"bt5:{event.key}"})

    db = Database(SETTINGS.model_copy(update={"db_port": 1}), "bt")  # nothing listens there

    async def database_back() -> None:
        db._settings = SETTINGS

    await _applied_once_the_database_is_back(
        bus, db, "bt5", EventHandler(Waited, on_waited, plain=True), Waited(key=key()),
        attempts, database_back)


async def test_queued_statements_travel_with_the_next_and_fail_where_sent(bus):
    """PlainTx.later: a multi-row insert and an upsert sent with the next read; an error in a
    queued statement surfaces at the round trip that sent it and rolls everything back."""
    k = key()
    async with bus.bt_db.plain_transaction(begin_later=True) as tx:
        inserted = tx.later("INSERT INTO effects (event_key) VALUES (:k)",
                            rows=[{"k": f"{k}:1"}, {"k": f"{k}:2'%"}])
        count = await tx.execute("SELECT COUNT(*) FROM effects WHERE event_key LIKE :p",
                                 {"p": f"{k}:%"})
        assert (inserted.rowcount, count.scalar()) == (2, 2)
        tx.later("INSERT INTO effects (event_key) VALUES (:k)", {"k": f"{k}:3"})
    assert await bus.effects(f"{k}:2'%") == 1 and await bus.effects(f"{k}:3") == 1
    with pytest.raises(sa_exc.IntegrityError):
        async with bus.bt_db.plain_transaction(begin_later=True) as tx:
            tx.later("INSERT INTO effects (event_key) VALUES (:k)", {"k": f"{k}:4"})
            tx.later("INSERT INTO effects (id, event_key) VALUES (1, 'a'), (1, 'b')")
    assert await bus.effects(f"{k}:4") == 0


async def test_event_log_stream_receives_every_event(bus):
    keys = [key() for _ in range(5)]
    async with bus.bp_db.transaction() as tx:
        ids = {tx.emit(Pinged(key=k)).id for k in keys}
    broker, task = await _relay(SETTINGS.amqp_url, bus.bp_db, "relay-log")
    try:
        await wait_for(lambda: _no_unsent(bus, bus.bp_db), 10)
    finally:
        await _stop_relay(broker, task)
    seen: set[str] = set()
    channel = await bus.amqp.channel()
    await channel.set_qos(prefetch_count=500)
    queue = await channel.get_queue(NAMES.event_log)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.add(message.message_id)
        await message.ack()

    await queue.consume(on_message, arguments={"x-stream-offset": "first"})
    await wait_for(lambda: ids <= seen, 10, what="the events in the log")
    await channel.close()


# -- measurement ----------------------------------------------------------------------------

async def round_trips_per_second(rpc: RpcClient, service: str, in_flight: int,
                                 seconds: float = 3.0) -> float:
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await rpc.ping(service, timeout=5)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return done / (time.monotonic() - started)


async def test_round_trips_per_second_in_process(bus, capsys):
    """Client and the bt service share this process's event loop (and one core)."""
    rates = {n: await round_trips_per_second(bus.rpc, "bt", n, 2.0) for n in (1, 64, 256)}
    with capsys.disabled():
        print("\nRPC ping round trips/s, client and server in one process:",
              {n: round(r) for n, r in rates.items()})
    assert rates[64] > rates[1]


async def test_listener_misses_nothing_while_its_connection_is_rebuilt(bus):
    """The gateway learns of revoked tokens from a Listener: an event published while the
    Listener's connection is being rebuilt must still reach it."""
    got: list[str] = []
    broker = Broker(SETTINGS.amqp_url, f"{NS}-listener")
    Listener(broker, NAMES, ["bt.pinged"], lambda envelope: got.append(envelope.data["key"]))
    await broker.start()
    try:
        first = key()
        await bus.publish_raw(orjson.dumps(Envelope.wrap(Pinged(key=first), "bp").model_dump(
            mode="json")))
        await wait_for(lambda: first in got, 5, what="the first event")
        connection = broker.connection
        assert await close_connections(f"{NS}-listener") == 1
        await wait_for(lambda: broker.connection is not connection, 5, 0.01, "the close")
        during = key()
        await bus.publish_raw(orjson.dumps(Envelope.wrap(Pinged(key=during), "bp").model_dump(
            mode="json")))
        await wait_for(lambda: during in got, 10, what="the event sent during the reconnect")
    finally:
        await broker.stop()


BENCH_SCRIPT = """
import asyncio, sys, time, uvloop
from messages.broker import Broker, delete_namespace
from messages.rpc import RpcClient
from messages.settings import Settings
from tests.test_bus import round_trips_per_second

async def main():
    settings = Settings()
    broker = Broker(settings.amqp_url, f"{settings.namespace}-bench")
    rpc = RpcClient(broker, settings.names)
    await broker.start()
    await rpc.ping("user")
    for n in map(int, sys.argv[1:]):
        print(n, round(await round_trips_per_second(rpc, "user", n, 3.0)), flush=True)
    await broker.stop()

uvloop.run(main())
"""


async def test_round_trips_per_second_between_processes(system, capsys):
    """A client process (uvloop) pinging the system's user_svc process, as the gateway
    would: the bus alone, no HTTP."""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", BENCH_SCRIPT, "1", "64", "256"], cwd=ROOT,
        capture_output=True, text=True, timeout=120, env={**os.environ, **system.env})
    assert done.returncode == 0, done.stderr
    rates = {int(n): int(r) for n, r in (line.split() for line in done.stdout.splitlines())}
    with capsys.disabled():
        print("\nRPC ping round trips/s, client process → user_svc process:", rates)
    assert rates[256] > rates[1]
