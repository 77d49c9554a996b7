"""The runtime of a service process: its handlers, and the one place that wires a service to
the broker, its database and the other services (``Service.run``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from messages.broker import Broker
from messages.contracts.base import Caller, Command, Event
from messages.db import Database
from messages.events import EventHandler, OutboxRelay, Subscriber
from messages.rpc import Handler, RpcClient, RpcServer
from messages.settings import Settings

log = logging.getLogger("ttms.service")


@dataclass(slots=True)
class Context:
    """What a command handler gets besides its command."""

    caller: Caller
    app: App
    # When the caller stops waiting (Unix time, seconds), for work that must not start if it
    # cannot finish before then; None for work no caller waits for (start-up).
    deadline: float | None = None


@dataclass
class App:
    """One per process: what handlers use to do their work."""

    name: str
    settings: Settings
    db: Database
    rpc: RpcClient
    broker: Broker
    # The service's own per-process state (caches, background tasks), built once at start-up
    # by ``Handlers(state=...)``: the one place a handler finds what outlives a command.
    state: Any = None


class Handlers:
    """A service's command and event handlers, registered with decorators::

        handlers = Handlers()

        @handlers.command(Register)
        async def register(cmd: Register, ctx: Context) -> User: ...

        @handlers.event(ScheduleCreated)
        async def on_schedule_created(event: ScheduleCreated, tx: Tx, app: App) -> None: ...
    """

    def __init__(self, state: Callable[[], Any] | None = None) -> None:
        self.new_state = state  # builds ``App.state`` at start-up
        self.commands: dict[str, Handler] = {}
        self.events: dict[str, EventHandler] = {}
        self.on_start: list[Callable[[App], Awaitable[None]]] = []

    def command(self, command: type[Command]):
        def register(fn):
            self.commands[command.name] = Handler(command, fn)
            return fn
        return register

    def event(self, event: type[Event], *, plain: bool = False):
        """``plain=True``: the handler gets a ``PlainTx`` (plain asyncmy, SQL strings) and
        shares it with the other plain events the Subscriber applies with it (those delivered
        together go in one transaction), so it must not trust the transaction's snapshot,
        which may predate its event: it reads with locking reads. Without it, each event gets
        a SQLAlchemy ``Tx`` of its own."""
        def register(fn):
            self.events[event.type] = EventHandler(event, fn, plain)
            return fn
        return register

    def startup(self, fn: Callable[[App], Awaitable[None]]):
        """Run at start (admin bootstrap) or for the process's life (sweeps)."""
        self.on_start.append(fn)
        return fn


def setup_logging(settings: Settings, name: str) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s")


class Service:
    def __init__(self, name: str, handlers: Handlers, settings: Settings | None = None) -> None:
        self.name = name
        self.handlers = handlers
        self.settings = settings or Settings()

    def run(self) -> None:
        import uvloop

        self.settings.refuse_unsafe_production()
        setup_logging(self.settings, self.name)
        uvloop.run(self.main())

    async def main(self, stop: asyncio.Event | None = None) -> None:
        settings = self.settings
        names = settings.names
        broker = Broker(settings.amqp_url, f"{settings.namespace}-{self.name}",
                        settings.amqp_heartbeat_seconds)
        db = Database(settings, self.name)
        app = App(self.name, settings, db, RpcClient(broker, names, settings.rpc_timeout_seconds),
                  broker, self.handlers.new_state() if self.handlers.new_state else None)

        events = {key: EventHandler(h.event, _bind_app(h.fn, app), h.plain)
                  for key, h in self.handlers.events.items()}
        if events:
            Subscriber(broker, names, db, self.name, events, settings.event_delivery_limit)
        relay = OutboxRelay(broker, names, db, settings.outbox_poll_seconds)
        RpcServer(broker, names, self.name, self.handlers.commands,
                  lambda caller, deadline_ms: Context(caller, app, deadline_ms / 1000))

        stop = stop or _stop_on_signals()
        tasks = [asyncio.create_task(relay.run(), name="outbox-relay"),
                 asyncio.create_task(app.rpc.watch_services(), name="watch-services")]
        await broker.start()
        settle_garbage_collector()
        tasks += [asyncio.create_task(_guard(fn(app), fn.__name__))
                  for fn in self.handlers.on_start]
        log.info("%s started", self.name)
        await stop.wait()
        log.info("%s stopping", self.name)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
        await db.dispose()


def settle_garbage_collector() -> None:
    """Call once a process has started. What exists then (modules, models, routes: ~100k
    objects) lives as long as the process, and CPython's full collections walk all of it
    again and again under load; frozen, they skip it. A larger first generation makes the
    young collections, which every request's short-lived objects trigger, rarer."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(7000, 20, 20)


def _bind_app(fn: Callable[..., Awaitable[None]],
              app: App) -> Callable[[Any, Any], Awaitable[None]]:
    async def bound(event: Any, tx: Any) -> None:
        await fn(event, tx, app)
    return bound


async def _guard(coro: Awaitable[Any], name: str) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("start-up task %s failed", name)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
