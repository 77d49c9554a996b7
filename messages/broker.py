"""One AMQP connection per process, opened again by itself after the broker goes away.

aio-pika's robust connection restores channels and consumers only partly after a broker
restart (direct reply-to consumers and channels closed by the broker are the known gaps), so
this is a plain supervisor instead: connect, run every registered set-up on the fresh
connection, wait for it to close, tell everyone it is gone, back off, repeat. Every consumer
and publisher in TTMS is (re)built by such a set-up, so nothing needs a process restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractConnection

log = logging.getLogger("ttms.broker")

Setup = Callable[[AbstractConnection], Awaitable[None]]


class Broker:
    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
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
        delay = 0.2
        while not self._stopping:
            closed = asyncio.get_running_loop().create_future()
            try:
                connection = await aio_pika.connect(
                    self.url, client_properties={"connection_name": self.name}, timeout=5)
            except Exception as exc:  # noqa: BLE001 - any failure means: try again later
                log.warning("cannot reach the broker (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            connection.close_callbacks.add(
                lambda *_, done=closed: done.done() or done.set_result(None))
            try:
                for setup in self._setups:
                    await setup(connection)
            except Exception:
                log.exception("set-up on a new broker connection failed; reconnecting")
                await connection.close()
                await asyncio.sleep(delay)
                continue
            self.connection = connection
            self.ready.set()
            delay = 0.2
            log.info("connected to the broker")
            await closed
            self.connection = None
            self.ready.clear()
            for callback in self._lost:
                callback()
            if not self._stopping:
                log.warning("broker connection lost; reconnecting")
                await asyncio.sleep(delay)

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
