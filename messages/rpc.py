"""Commands to a service and their replies, over RabbitMQ.

Wire format: an AMQP message carries a *list* of commands, each
``[call_id, command_name, deadline_ms, caller, payload]``, and a reply message a list of
``[call_id, ok, result_or_error]``. Calls made in the same event-loop turn to the same service
travel in one message, and replies finished in the same turn for the same caller travel back in
one message. Under light load that is one command per message (no added latency); under heavy
load the per-message AMQP cost, which dominates on this stack, is shared by many commands.
Handlers never see any of this: they take a typed command and return a typed reply.

The message ``type`` is the command name when a message carries one command, ``batch``
otherwise. Its ``expiration`` is the latest deadline in it, so the broker drops commands whose
callers gave up; each command's own deadline is checked again before it runs (a prefetched
command waits in the consumer, where the expiration no longer applies).

A handler still running ``HANDLER_GRACE_SECONDS`` after its deadline is cancelled: its caller
gets ``timeout`` (it has given up already) and the command is acked, so a handler that never
returns holds a prefetch slot for at most its deadline plus the grace. Cancelling is safe
where a handler waits on I/O: a statement cut short closes its database connection (the
driver closes a connection whose read was cancelled; SQLAlchemy invalidates it), so the
server rolls the open transaction back and the pool never hands out a desynced connection.
What cannot be undone is a COMMIT the server has already received: the change stands though
its answer is lost, which commands tolerate because they are delivered at least once and
their handlers are idempotent. Work a handler moved to a thread (password hashing) runs to
its end; the handler just stops waiting for it. Tasks a handler spawned itself, and shielded
work, are not cancelled.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiormq.abc import ChannelFrame, DeliveredMessage
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader
from pydantic import BaseModel, ValidationError

from messages import errors
from messages.broker import Broker, BrokerClient
from messages.contracts.base import Caller, Command
from messages.settings import Names

log = logging.getLogger("ttms.rpc")

REPLY_TO = "amq.rabbitmq.reply-to"
RECHECK_SECONDS = 0.5  # a service seen with no consumer is asked about again after this
# How long a handler may go on past its command's deadline before it is cancelled. Nobody
# waits for its answer by then; the grace lets work that is about to finish (a COMMIT in
# flight) finish rather than be cut, and bounds how long a stuck handler (a frozen database,
# a call that never returns) keeps its command unacked in the prefetch window.
HANDLER_GRACE_SECONDS = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def _dump(result: Any) -> Any:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    return result


class RpcClient(BrokerClient):
    """Calls commands on services. One per process; safe to use from many tasks at once."""

    def __init__(self, broker: Broker, names: Names, timeout: float = 5.0) -> None:
        super().__init__(broker, names)  # _channel: aiormq's; publish and replies share it
        self.timeout = timeout
        self._pending: dict[str, asyncio.Future] = {}
        self._queued: dict[str, list[list[Any]]] = {}
        self._flush_scheduled = False
        self._ids = itertools.count()
        self._prefix = uuid.uuid4().hex[:10]
        self._consumers: dict[str, int] = {}  # service -> consumers seen on its queue
        self._watch: set[str] = set()
        self._watch_channel = None
        self._learning: dict[str, asyncio.Future] = {}
        self._checked: dict[str, float] = {}  # service -> when its consumer count was seen

    async def _setup(self, connection) -> None:
        channel = await self._broker.channel(connection)
        raw = await channel.get_underlay_channel()
        await raw.basic_consume(REPLY_TO, self._on_reply, no_ack=True)
        self._watch_channel = channel
        self._channel = raw
        await self._refresh_consumers()

    def _on_lost(self) -> None:
        super()._on_lost()
        self._consumers.clear()
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(errors.ServiceUnavailable("lost the message broker"))

    async def ask(self, command: Command, caller: Caller | dict[str, Any] | None,
                  timeout: float | None = None) -> Any:
        """``call`` with a typed command (a contract class): how one service asks another.
        (The class's name: a body field called ``name`` hides it on the instance.)"""
        return await self.call(type(command).name, command, caller, timeout)

    async def call(self, command: str, payload: dict[str, Any] | BaseModel,
                   caller: Caller | dict[str, Any] | None,
                   timeout: float | None = None) -> Any:
        """Run ``command`` on its service; returns the reply as plain JSON data, or raises the
        service's typed error. ServiceUnavailable when the broker or the service is down,
        Timeout at the deadline."""
        if self._channel is None:
            raise errors.ServiceUnavailable("the message broker is unreachable")
        service = command.split(".", 1)[0]
        self._watch.add(service)
        timeout = self.timeout if timeout is None else timeout
        count = self._consumers.get(service)
        if count is None or (count == 0 and time.monotonic() - self._checked.get(service, 0)
                             > RECHECK_SECONDS):
            # First call to this service on this connection: learn its consumer count now
            # (one queue.declare, shared by concurrent calls), so that a service that is not
            # running answers 503 at once instead of a Timeout at the deadline. A count of 0
            # is checked again after a while, so the client needs no watcher to see it back.
            started = time.monotonic()
            await self._learn_consumers(service, min(timeout, 1.0))
            timeout = max(timeout - (time.monotonic() - started), 0.001)  # one deadline
            if self._channel is None:
                raise errors.ServiceUnavailable("the message broker is unreachable")
        if self._consumers.get(service, 1) == 0:
            raise errors.ServiceUnavailable(f"{service} service is not running")
        if isinstance(payload, BaseModel):
            payload = payload.model_dump(mode="json")
        if isinstance(caller, Caller):
            caller = caller.model_dump(mode="json")
        loop = asyncio.get_running_loop()
        call_id = f"{self._prefix}{next(self._ids)}"
        future = loop.create_future()
        self._pending[call_id] = future
        self._queued.setdefault(service, []).append(
            [call_id, command, _now_ms() + int(timeout * 1000), caller, payload])
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        timer = loop.call_later(timeout, self._expire, call_id)
        try:
            return await future
        finally:
            timer.cancel()
            self._pending.pop(call_id, None)
            # A refused call's error holds this frame through its traceback, and the frame
            # holds the future that holds the error: a cycle, which left each refused request
            # (its frames, request and response objects) to the cyclic garbage collector.
            del future

    def in_flight(self) -> int:
        """Calls waiting for their reply."""
        return len(self._pending)

    def _expire(self, call_id: str) -> None:
        future = self._pending.pop(call_id, None)
        if future is not None and not future.done():
            future.set_exception(errors.Timeout("the service did not answer in time"))

    def _flush(self) -> None:
        self._flush_scheduled = False
        queued, self._queued = self._queued, {}
        for service, calls in queued.items():
            asyncio.ensure_future(self._publish(service, calls))

    async def _publish(self, service: str, calls: list[list[Any]]) -> None:
        try:
            ttl = max(c[2] for c in calls) - _now_ms()
            properties = Basic.Properties(
                content_type="application/json",
                message_type=calls[0][1] if len(calls) == 1 else "batch",
                reply_to=REPLY_TO,
                expiration=str(max(ttl, 1)),
                delivery_mode=1,
            )
            channel = self._channel
            if channel is None:
                raise errors.ServiceUnavailable("the message broker is unreachable")
            # wait=False: queued for the socket without waiting for it to drain (a drain per
            # frame cost a task switch each); the frames still go out in order.
            await channel.basic_publish(orjson.dumps(calls),
                                        routing_key=self._names.rpc_queue(service),
                                        properties=properties, wait=False)
        except Exception as exc:  # noqa: BLE001 - each caller gets the failure
            failure = exc if isinstance(exc, errors.ServiceError) else errors.ServiceUnavailable(
                "could not send the command")
            for call in calls:
                future = self._pending.get(call[0])
                if future is not None and not future.done():
                    future.set_exception(failure)

    def _on_reply(self, message: DeliveredMessage) -> None:
        for call_id, ok, value in orjson.loads(message.body):
            future = self._pending.pop(call_id, None)
            if future is None or future.done():
                continue  # the caller already gave up
            if ok:
                future.set_result(value)
            else:
                future.set_exception(errors.ServiceError.from_wire(value))

    async def _refresh_consumers(self) -> None:
        for service in list(self._watch):
            try:
                queue = await self._watch_channel.declare_queue(
                    self._names.rpc_queue(service), durable=True,
                    arguments=self._names.transient())
                self._consumers[service] = queue.declaration_result.consumer_count
                self._checked[service] = time.monotonic()
            except Exception:  # noqa: BLE001 - the connection supervisor handles the rest
                return

    async def _learn_consumers(self, service: str, wait: float) -> None:
        learning = self._learning.get(service)
        if learning is None:
            learning = self._learning[service] = asyncio.ensure_future(
                self._declare_for_count(service))
            learning.add_done_callback(lambda _: self._learning.pop(service, None))
        try:
            # shield: a caller that gives up does not cancel a queue.declare in flight (aiormq
            # channels do not take well to cancelled RPCs); the declare itself goes on.
            await asyncio.wait_for(asyncio.shield(learning), wait)
        except TimeoutError:
            pass  # unknown count: the call goes out and may time out

    async def _declare_for_count(self, service: str) -> None:
        channel = self._watch_channel
        if self._channel is None or channel is None:
            return
        try:
            queue = await channel.declare_queue(
                self._names.rpc_queue(service), durable=True,
                arguments=self._names.transient())
            if self._watch_channel is channel:  # not a count from a connection since lost
                self._consumers[service] = queue.declaration_result.consumer_count
                self._checked[service] = time.monotonic()
        except Exception:  # noqa: BLE001 - unknown count: the call goes out and may time out
            return

    async def watch_services(self, interval: float = 1.0) -> None:
        """Keep a count of each called service's consumers, so that calls to a service with
        none fail at once with 503 instead of waiting for their deadline."""
        while True:
            await asyncio.sleep(interval)
            if self._channel is not None:
                await self._refresh_consumers()

    async def ping(self, service: str, timeout: float = 1.0) -> dict[str, Any]:
        return await self.call(f"{service}.ping", {}, {"user_id": None, "role": None}, timeout)


def _dump_replies(results: list[list[Any]]) -> bytes:
    """The reply message. A result that cannot be serialized is a handler bug: it becomes an
    internal error for its own caller only (before, the whole reply message and the acks that
    follow it were lost, leaving callers to time out and commands unacked)."""
    try:
        return orjson.dumps(results)
    except TypeError:
        safe = []
        for result in results:
            try:
                orjson.dumps(result)
                safe.append(result)
            except TypeError:
                log.error("the reply to call %s cannot be serialized", result[0])
                safe.append([result[0], 0, errors.InternalError().to_wire()])
        return orjson.dumps(safe)


_REPLY_PROPERTIES = Basic.Properties(delivery_mode=1)


async def _write_together(channel, replies: list[tuple[str, bytes]], acks: list[int]) -> None:
    """Publish ``replies`` (routing key, body) to the default exchange, then ack ``acks``, in
    one socket write. aiormq writes (and the broker reads) each publish and each ack on its
    own, and under load a flush carries a reply per caller plus an ack per command message
    (aiormq's writer was ~15% of ticket_svc's CPU in the rush). Frames are put on the
    connection's write queue (aiormq 7's ``Connection.write_queue``, as its own methods do)
    as one unit, so nothing interleaves with them; no confirms are involved (RPC channels do
    not use them). mandatory=False: with it, RabbitMQ 3.10 returns direct replies as
    unroutable."""
    if channel.is_closed:
        raise ConnectionError("the channel is closed")
    size = channel.max_content_size
    frames: list[Any] = []
    for routing_key, body in replies:
        frames.append(Basic.Publish(exchange="", routing_key=routing_key))
        frames.append(ContentHeader(properties=_REPLY_PROPERTIES, body_size=len(body)))
        frames.extend(ContentBody(body[i:i + size]) for i in range(0, len(body), size))
    frames.extend(Basic.Ack(delivery_tag=tag) for tag in acks)
    if frames:
        await channel.write_queue.put(ChannelFrame.marshall(channel.number, frames))


@dataclass(slots=True)
class Handler:
    command: type[Command]
    fn: Callable[..., Awaitable[Any]]


class RpcServer(BrokerClient):
    """Consumes one service's command queue: dispatch by command name, reply, then ack."""

    def __init__(self, broker: Broker, names: Names, service: str,
                 handlers: dict[str, Handler], context: Callable[[Caller, int], Any],
                 prefetch: int = 64) -> None:
        super().__init__(broker, names)
        self.service = service
        self._handlers = handlers
        self._context = context
        self._prefetch = prefetch
        self._replies: dict[str, list[list[Any]]] = {}
        self._acks: list[int] = []
        self._flush_scheduled = False
        self._in_flight: set[asyncio.Task] = set()
        self.paused = False

    async def _setup(self, connection) -> None:
        channel = await self._broker.channel(connection, prefetch=self._prefetch)
        await channel.declare_queue(self._names.rpc_queue(self.service), durable=True,
                                    arguments=self._names.transient())
        raw = await channel.get_underlay_channel()
        self._channel = raw
        await raw.basic_consume(self._names.rpc_queue(self.service), self._on_message)

    def _on_lost(self) -> None:
        super()._on_lost()
        self._replies.clear()
        self._acks.clear()  # unacked commands come back to another consumer

    async def _on_message(self, message: DeliveredMessage) -> None:
        channel = message.channel
        try:
            calls = orjson.loads(message.body)
            if not isinstance(calls, list):
                raise ValueError("not a list of commands")
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            # Acked, not left unacked: a few such messages would otherwise fill the prefetch
            # window and stop this server for good.
            log.error("dropping a command message that is not a JSON list of commands")
            await channel.basic_ack(message.delivery.delivery_tag)
            return
        reply_to = message.header.properties.reply_to
        # Each command's reply is queued as soon as that command is done (replies done in the
        # same loop turn still share a message); the message is acked once all are. Replying
        # only when the whole message was done made every call wait for the slowest command
        # that happened to travel with it, up to timing out with it.
        await asyncio.gather(*(self._answer(call, reply_to, channel) for call in calls))
        if channel is not self._channel:
            return  # connection replaced meanwhile: the broker redelivers the command
        self._acks.append(message.delivery.delivery_tag)
        self._schedule_flush()

    async def _answer(self, call: Any, reply_to: str | None, channel) -> None:
        result = await self._run_safely(call)
        if result is None or not reply_to or channel is not self._channel:
            return
        self._replies.setdefault(reply_to, []).append(result)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        replies, self._replies = self._replies, {}
        acks, self._acks = self._acks, []
        if self._channel is not None:
            asyncio.ensure_future(self._send(self._channel, replies, acks))

    async def _send(self, channel, replies: dict[str, list[list[Any]]], acks: list[int]) -> None:
        try:
            await _write_together(channel, [(reply_to, _dump_replies(results))
                                            for reply_to, results in replies.items()], acks)
        except Exception as exc:  # noqa: BLE001 - connection gone: commands are redelivered
            log.warning("could not send replies (%s)", exc)

    async def _run_safely(self, call: Any) -> list[Any] | None:
        """``_run``, for a command that may be malformed (None: no answer is possible)."""
        if not (isinstance(call, list) and len(call) == 5 and isinstance(call[0], str | int)):
            log.error("dropping a malformed command %.200r", call)
            return None
        if not isinstance(call[2], int | float) or not isinstance(call[1], str):
            return [call[0], 0, errors.BadRequest("malformed command").to_wire()]
        return await self._run(call)

    async def _run(self, call: list[Any]) -> list[Any]:
        call_id, name, deadline_ms, caller, payload = call
        if deadline_ms < _now_ms():
            return [call_id, 0, errors.Timeout("the caller's deadline passed").to_wire()]
        if name == f"{self.service}.ping":
            return [call_id, 1, {"service": self.service, "pid": os.getpid()}]
        handler = self._handlers.get(name)
        if handler is None:
            return [call_id, 0, errors.BadRequest(f"unknown command {name}").to_wire()]
        if not isinstance(caller, dict):
            return [call_id, 0, errors.Unauthorized("the command carries no caller").to_wire()]
        # A handler still running HANDLER_GRACE_SECONDS after its deadline is cancelled, so
        # that it cannot hold its command (and a prefetch slot) for ever. Where that is safe:
        # see the module's docstring.
        bound = asyncio.timeout_at(asyncio.get_running_loop().time()
                                   + (deadline_ms - _now_ms()) / 1000 + HANDLER_GRACE_SECONDS)
        try:
            command = handler.command.model_validate(payload)
            context = self._context(Caller.model_validate(caller), deadline_ms)
            async with bound:
                result = await handler.fn(command, context)
            return [call_id, 1, _dump(result)]
        except errors.ServiceError as exc:
            return [call_id, 0, exc.to_wire()]
        except ValidationError as exc:
            return [call_id, 0, errors.ValidationFailed(
                details=errors.validation_details(exc)).to_wire()]
        except Exception as exc:
            if bound.expired():  # the TimeoutError of the bound, not the handler's own
                log.warning("command %s was still running %.1fs after its deadline: cancelled",
                            name, HANDLER_GRACE_SECONDS)
                return [call_id, 0, errors.Timeout("the caller's deadline passed").to_wire()]
            mapped = errors.from_infrastructure(exc)
            if mapped is None:
                log.exception("command %s failed", name)
                mapped = errors.InternalError()
            else:  # answered 503: say which failure, or the answer is all that is left of it
                log.warning("command %s answered %s: %s: %s", name, mapped.code,
                            type(exc).__name__, exc)
            return [call_id, 0, mapped.to_wire()]
