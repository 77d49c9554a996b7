"""One AMQP connection per process, opened again by itself after the broker goes away.

``TTMS_AMQP_URL`` may name several nodes of one RabbitMQ cluster, comma-separated. A process
starts on one of them (chosen by its pid, so that the processes of a host spread over the
nodes) and, when its connection is lost or refused, goes on to the next: aio-pika's
``connect_robust`` knows one URL only, so the rotation is here. ``connect`` is the same for a
one-off connection (tools, the event log, the dead letters).

aio-pika's robust connection restores channels and consumers only partly after a broker
restart (direct reply-to consumers and channels closed by the broker are the known gaps), so
this is a plain supervisor instead: connect, run every registered set-up on the fresh
connection, wait for it to close, tell everyone it is gone, back off, repeat. Every consumer
and publisher in TTMS is (re)built by such a set-up (``BrokerClient``), so nothing needs a
process restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aio_pika
from aio_pika.abc import AbstractConnection

if TYPE_CHECKING:
    from messages.settings import Names

log = logging.getLogger("ttms.broker")

Setup = Callable[[AbstractConnection], Awaitable[None]]
# Longest pause between connection attempts. Short, because a refused connection costs the
# broker nothing and every second here is a second of 503s after the broker is back
# (it was 5 s: a broker restart of 5 s took up to 5 s more to be noticed).
MAX_BACKOFF = 1.0
# AMQP heartbeat (TTMS_AMQP_HEARTBEAT_SECONDS). A broker that stops answering without closing
# the connection (frozen, its host gone, a dropped network path) is noticed only through it:
# aiormq gives up on a connection that sent no frame for (heartbeat + 1) × 3 seconds, checked
# every heartbeat / 2 (at least 1 s), so 2 s means about 9-10 s; the library default of 60 s
# meant three minutes of requests published into a dead socket. Lower is not better: RabbitMQ
# drops a client it has heard nothing from for two heartbeats, and 1 s would drop a process
# whose event loop stalls for two seconds on a busy machine (it writes a heartbeat every
# second from that loop).
HEARTBEAT_SECONDS = 2


def node_urls(url: str) -> list[str]:
    """The broker addresses in ``TTMS_AMQP_URL`` (one, or several nodes comma-separated)."""
    found = [part.strip() for part in url.split(",") if part.strip()]
    if not found:
        raise ValueError("TTMS_AMQP_URL names no broker")
    return found


async def connect(url: str, **options: Any) -> AbstractConnection:
    """A plain connection to the first node of ``url`` that answers (in the order given)."""
    failure: Exception | None = None
    for node in node_urls(url):
        try:
            return await aio_pika.connect(node, **options)
        except Exception as exc:  # noqa: BLE001 - the next node may answer
            failure = exc
    assert failure is not None
    raise failure


class Broker:
    def __init__(self, url: str, name: str, heartbeat: int = HEARTBEAT_SECONDS) -> None:
        self.urls = node_urls(url)
        # where this process starts; it moves on to the next node after each loss
        self._node = os.getpid() % len(self.urls)
        self.url = self.urls[self._node]
        self._refused = 0  # connection attempts refused in a row
        self.name = name
        self.heartbeat = heartbeat
        self.connection: AbstractConnection | None = None
        self.ready = asyncio.Event()
        self._setups: list[Setup] = []
        self._lost: list[Callable[[], None]] = []
        self._task: asyncio.Task | None = None
        self._stopping = False

    def on_connect(self, setup: Setup) -> None:
        """Run ``setup`` on every new connection (now, if one is already open)."""
        self._setups.append(setup)

    def on_lost(self, callback: Callable[[], None]) -> None:
        self._lost.append(callback)

    async def start(self, wait: float | None = 30.0) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"broker-{self.name}")
        if wait:
            try:
                await asyncio.wait_for(self.ready.wait(), wait)
            except TimeoutError:
                log.warning("broker not reachable yet; going on and retrying in the background")

    async def stop(self) -> None:
        self._stopping = True
        if self.connection is not None:
            await self.connection.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _supervise(self) -> None:
        # Nothing may end this loop but stop(): an exception that escaped it (a failing close
        # of a half-open connection, a lost-callback that raised, a CancelledError that aiormq
        # raises in operations of a connection it is closing) used to end the task silently,
        # and the process then stayed without a broker until it was restarted.
        delay = 0.2
        while not self._stopping:
            try:
                delay = await self._connect_once(delay)
            except asyncio.CancelledError:
                if self._stopping or _cancelled(asyncio.current_task()):
                    raise
                log.warning("broker connection set-up was cancelled; reconnecting")
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
            except Exception:
                log.exception("broker connection supervisor failed; reconnecting")
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def _connect_once(self, delay: float) -> float:
        """One connection's life: connect, set up, wait until it closes. Returns the next
        back-off delay."""
        closed = asyncio.get_running_loop().create_future()
        try:
            connection = await aio_pika.connect(
                self.url, client_properties={"connection_name": self.name}, timeout=5,
                heartbeat=self.heartbeat)
        except Exception as exc:  # noqa: BLE001 - any failure means: try again later
            self._next_node()
            self._refused += 1
            if self._refused % len(self.urls):  # nodes left to try before backing off
                log.warning("cannot reach the broker (%s); trying %s", exc, _host(self.url))
                return delay
            log.warning("cannot reach the broker (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            return min(delay * 2, MAX_BACKOFF)
        connection.close_callbacks.add(
            lambda *_, done=closed: done.done() or done.set_result(None))
        try:
            for setup in self._setups:
                await setup(connection)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and (
                    self._stopping or _cancelled(asyncio.current_task())):
                raise
            log.warning("set-up on a new broker connection failed (%r); reconnecting", exc)
            # The set-ups that did run may have registered consumers: tell everyone the
            # connection is gone, as after any loss, before the next one is built.
            await self._close_quietly(connection)
            self._tell_lost()
            self._next_node()  # a node cut off from its cluster refuses declarations
            await asyncio.sleep(delay)
            return min(delay * 2, MAX_BACKOFF)
        self.connection = connection
        self._refused = 0
        self.ready.set()
        log.info("%s connected to the broker", self.name)
        await closed
        self.connection = None
        self.ready.clear()
        self._tell_lost()
        if not self._stopping:
            # its node may be gone: the next one first (with one node, the same again)
            self._next_node()
            log.warning("%s lost its broker connection; reconnecting to %s", self.name,
                        _host(self.url))
            await asyncio.sleep(0.2)
        return 0.2

    def _next_node(self) -> None:
        self._node = (self._node + 1) % len(self.urls)
        self.url = self.urls[self._node]

    def _tell_lost(self) -> None:
        for callback in self._lost:
            try:
                callback()
            except Exception:
                log.exception("a broker-lost callback failed")

    @staticmethod
    async def _close_quietly(connection: AbstractConnection) -> None:
        try:
            await asyncio.wait_for(connection.close(), 5)
        except (Exception, asyncio.CancelledError):  # it is being dropped anyway
            if _cancelled(asyncio.current_task()):
                raise

    async def channel(self, connection: AbstractConnection, *, confirms: bool = False,
                      prefetch: int | None = None) -> aio_pika.abc.AbstractChannel:
        """A channel whose unexpected close drops the whole connection, so that the
        supervisor rebuilds everything in one consistent way."""
        channel = await connection.channel(publisher_confirms=confirms)
        if prefetch:
            await channel.set_qos(prefetch_count=prefetch)

        def on_close(_: object, exc: BaseException | None = None) -> None:
            if exc is not None and not self._stopping and not connection.is_closed:
                log.warning("channel closed by the broker (%s); reconnecting", exc)
                asyncio.ensure_future(connection.close())

        channel.close_callbacks.add(on_close)
        return channel


def _host(url: str) -> str:
    """A node's address without its credentials, for the log."""
    return url.rsplit("@", 1)[-1]


class BrokerClient:
    """Base of the publishers and consumers that keep a channel of the process's connection:
    ``_setup`` runs on every new connection (declares what it uses, opens ``_channel``),
    ``_on_lost`` when the connection is gone (drops the channel and what was in flight on it)."""

    def __init__(self, broker: Broker, names: Names) -> None:
        self._broker = broker
        self._names = names
        self._channel: Any = None
        broker.on_connect(self._setup)
        broker.on_lost(self._on_lost)

    async def _setup(self, connection: AbstractConnection) -> None:
        raise NotImplementedError

    def _on_lost(self) -> None:
        self._channel = None


def _cancelled(task: asyncio.Task | None) -> bool:
    """True when ``task`` itself is being cancelled (by stop()), not merely handed a
    CancelledError by a library whose connection closed under it."""
    return task is not None and task.cancelling() > 0


async def delete_namespace(url: str, names) -> list[str]:
    """Delete every queue of a namespace (``<ns>.…``) and its exchanges, so that a test or
    chaos run starts empty. Queues are listed with ``rabbitmqctl`` (AMQP cannot list them).
    Returns the deleted queues' names."""
    listed = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    output, _ = await asyncio.wait_for(listed.communicate(), 60)
    queues = [q.strip() for q in output.decode().splitlines()
              if q.strip().startswith(f"{names.ns}.")]
    connection = await connect(url)
    async with connection:
        for queue in queues:
            channel = await connection.channel()  # a failed delete would close the channel
            await channel.queue_delete(queue)
        channel = await connection.channel()
        for exchange in (names.events_exchange, names.dead_letter_exchange,
                         names.delay_exchange):
            await channel.exchange_delete(exchange)
    return queues

