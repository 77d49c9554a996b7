"""The faults, one at a time, each injected while a rush runs, and the phase that wraps them:
a fresh show, the rush, the fault in the middle of it, then recovery and the invariants.

Shared dependencies (RabbitMQ, MariaDB) are always restored in a ``finally``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import launcher
from chaos import checks
from chaos.rush import Api, Customer, Record, Rush, RushPlan, make_show
from messages import broker
from messages.settings import Settings
from messages.streams import EventLog

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Target:
    """The system under test: where it runs and how to reach it."""
    url: str
    env: dict[str, str]
    run_dir: Path
    settings: Settings
    api: Api
    manager: Customer
    people: list[Customer]


@dataclass
class Window:
    """When the fault was in force (monotonic), and what the fault itself noted."""
    began: float = 0.0
    ended: float = 0.0
    ready_at: float = 0.0
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    # run once the rush is over, before the checks (e.g. wait for queues to drain)
    after_rush: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


Fault = Callable[[Target, Window], Awaitable[None]]


async def ready(target: Target, within: float = 60.0) -> float:
    """Seconds until /readyz answers 200 (raises if it does not within ``within``)."""
    started = time.monotonic()
    while True:
        status, _ = await target.api.call(None, "readyz", "GET", "/readyz")
        if status == 200:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise RuntimeError(f"/readyz not 200 within {within:.0f}s")
        await asyncio.sleep(0.1)


# -- the faults -----------------------------------------------------------------------------

def kill(name: str, down_for: float = 2.0) -> Fault:
    """SIGKILL one process (its whole group), leave it down a moment, start it again."""

    async def fault(target: Target, window: Window) -> None:
        window.began = time.monotonic()
        try:
            await asyncio.to_thread(launcher.kill_one, target.run_dir, name, signal.SIGKILL)
            await asyncio.sleep(down_for)
        finally:
            await asyncio.to_thread(launcher.start_one, target.run_dir, name, target.env)
            window.ended = time.monotonic()
    fault.__name__ = f"kill {name}"
    return fault


NO_FAULT = "no fault (the rush's own rate)"


async def nothing(target: Target, window: Window) -> None:
    """No fault: a phase that measures the rush's rate (and its time to the first sale)."""
    window.began = time.monotonic()
    await asyncio.sleep(1.0)
    window.ended = time.monotonic()


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def broker_restart(down_for: float = 3.0) -> Fault:
    """``rabbitmqctl stop_app``, a few seconds, ``start_app`` (always)."""

    async def fault(target: Target, window: Window) -> None:
        window.began = time.monotonic()
        try:
            await asyncio.to_thread(_rabbitmqctl, "stop_app")
            window.notes.append(f"stop_app took {time.monotonic() - window.began:.1f}s")
            await asyncio.sleep(down_for)
        finally:
            started = time.monotonic()
            await asyncio.to_thread(_rabbitmqctl, "start_app")
            window.ended = time.monotonic()
            window.notes.append(f"start_app took {window.ended - started:.1f}s")
    fault.__name__ = "broker restart"
    return fault


def _mariadbd_pid() -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("mariadbd", "mysqld"):
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError("no mariadbd process found")


async def _db_answers(settings: Settings, within: float = 60.0) -> float:
    started = time.monotonic()
    engine = create_async_engine(settings.database_url("ticket"), pool_pre_ping=True)
    try:
        while True:
            try:
                async with asyncio.timeout(2):
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                return time.monotonic() - started
            except Exception:  # not yet
                if time.monotonic() - started > within:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def database_freeze(down_for: float = 10.0) -> Fault:
    """MariaDB stopped for ``down_for`` seconds with SIGSTOP, resumed with SIGCONT (always).

    Not a real stop/start: the server is shared with other engineers' running tests, and a
    restart of it (its exact arguments, crash recovery) is the riskier thing to get wrong.
    A frozen server is also the harsher case for the clients: connections are accepted by the
    kernel and then nothing answers, so only deadlines save the callers.
    """

    async def fault(target: Target, window: Window) -> None:
        pid = _mariadbd_pid()
        window.began = time.monotonic()
        try:
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(down_for)
        finally:
            os.kill(pid, signal.SIGCONT)
            window.ended = time.monotonic()
        took = await _db_answers(target.settings)
        window.notes.append(f"mariadbd pid {pid} SIGSTOP {down_for:.0f}s, SIGCONT; "
                            f"3306 answered a query {took:.1f}s after")
    fault.__name__ = "database stopped 10s"
    return fault


def _start_copies(target: Target) -> tuple[dict[str, subprocess.Popen], dict[str, int]]:
    extra: dict[str, subprocess.Popen] = {}
    offsets: dict[str, int] = {}
    for name in launcher.SERVICES:
        with open(target.run_dir / "logs" / f"{name}.2.log", "ab") as log:
            offsets[name] = log.tell()
            extra[name] = subprocess.Popen(
                [sys.executable, "-m", name], cwd=ROOT,
                env={"PYTHONUNBUFFERED": "1", **os.environ, **target.env},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
    return extra, offsets


def _stop_copies(extra: dict[str, subprocess.Popen]) -> None:
    for proc in extra.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in extra.values():
        try:
            proc.wait(launcher.STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _started(target: Target, name: str, offset: int) -> bool:
    """Has the second copy said it is serving? (services: "… started"; the gateway: once it
    loaded the token revocations, just before it listens). Its log from ``offset`` on."""
    with open(target.run_dir / "logs" / f"{name}.2.log", "rb") as log:
        log.seek(offset)
        said = log.read().decode(errors="replace")
    return ("token revocations" if name == "gateway" else " started") in said


def doubled(hold_for: float = 10.0, start_within: float = 60.0) -> Fault:
    """A second process of every service (and of the gateway, on the same port) for
    ``hold_for`` seconds once all of them serve, then stopped again (SIGTERM, SIGKILL after
    the launcher's grace)."""

    async def fault(target: Target, window: Window) -> None:
        window.began = time.monotonic()
        extra: dict[str, subprocess.Popen] = {}
        try:
            extra, offsets = await asyncio.to_thread(_start_copies, target)
            for name in launcher.SERVICES:
                while not _started(target, name, offsets[name]):
                    if extra[name].poll() is not None:
                        raise RuntimeError(f"the second {name} exited with code "
                                           f"{extra[name].returncode}")
                    if time.monotonic() - window.began > start_within:
                        raise RuntimeError(f"the second {name} did not start within "
                                           f"{start_within:.0f}s")
                    await asyncio.sleep(0.2)
            window.notes.append(f"all six second copies serving "
                                f"{time.monotonic() - window.began:.1f}s after their start")
            await asyncio.sleep(hold_for / 2)
            window.notes.append("consumers per RPC queue: " + ", ".join(
                f"{svc} {n}" for svc, n in (await _consumers(target.settings)).items())
                + f"; gateway listeners on the port: {_listeners(target)}")
            await asyncio.sleep(hold_for / 2)
            exited = [n for n, p in extra.items() if p.poll() is not None]
            if exited:
                window.notes.append(f"second copies that exited early: {exited}")
        finally:
            await asyncio.to_thread(_stop_copies, extra)
            window.ended = time.monotonic()
    fault.__name__ = "every process twice"
    return fault


def _listeners(target: Target) -> int:
    port = target.env.get("TTMS_GATEWAY_PORT", "8080")
    done = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True,
                          text=True, timeout=10)
    return done.stdout.count("pid=")


async def _consumers(settings: Settings) -> dict[str, int]:
    found = {}
    connection = await broker.connect(settings.amqp_url)
    async with connection:
        for svc in ("user", "studio", "play", "ticket", "order"):
            channel = await connection.channel()
            queue = await channel.declare_queue(settings.names.rpc_queue(svc), passive=True)
            found[svc] = queue.declaration_result.consumer_count
    return found


CONSUMERS = ("user", "studio", "play", "ticket", "order")


async def _depths(settings: Settings, dead: bool) -> dict[str, int]:
    """Ready messages in each consumer's event queue (or dead-letter queue) that exists."""
    names = settings.names
    found = {}
    connection = await broker.connect(settings.amqp_url)
    async with connection:
        for consumer in CONSUMERS:
            name = names.dead_letter_queue(consumer) if dead else names.event_queue(consumer)
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:  # no such queue: not a consumer
                continue
            found[consumer] = queue.declaration_result.message_count
            await channel.close()
    return found


def duplicated_events(since: datetime, copies: int = 2, replay: bool = False) -> Fault:
    """Every event logged since ``since`` published again onto the events exchange, ``copies``
    times each, shuffled (so reordered too); every consumer's inbox must make them no-ops.
    With ``replay``, also ``python -m order_svc.tools replay --since`` (rebuild under load)."""

    async def fault(target: Target, window: Window) -> None:
        window.began = time.monotonic()
        names = target.settings.names
        dead_before = await _depths(target.settings, dead=True)
        async with EventLog(target.settings) as event_log:
            logged = [e async for e in event_log.read(since)]
        batch = [e for e in logged for _ in range(copies)]
        random.shuffle(batch)
        connection = await broker.connect(target.settings.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(names.events_exchange, ensure=False)
            for e in batch:
                await exchange.publish(
                    aio_pika.Message(e.body, message_id=e.message_id, type=e.routing_key,
                                     content_type="application/json",
                                     delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=e.routing_key)
        window.notes.append(f"published {len(batch)} copies of {len(logged)} logged events "
                            "in shuffled order")

        async def drained() -> None:
            published = time.monotonic()
            while any((await _depths(target.settings, dead=False)).values()):
                if time.monotonic() - published > 60:
                    window.failures.append("the event queues did not drain within 60 s")
                    break
                await asyncio.sleep(0.2)
            window.notes.append(f"every consumer's event queue empty "
                                f"{time.monotonic() - published:.1f}s after the rush")
            dead_after = await _depths(target.settings, dead=True)
            grown = {c: dead_after[c] - dead_before.get(c, 0) for c in dead_after
                     if dead_after[c] > dead_before.get(c, 0)}
            if grown:
                window.failures.append(f"copies were dead-lettered instead of ignored: {grown}")
            else:
                window.notes.append("no event dead-lettered")

        window.after_rush.append(drained)
        if replay:
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "order_svc.tools", "replay", "--since",
                 since.isoformat()],
                cwd=ROOT, env={**os.environ, **target.env}, capture_output=True, text=True,
                timeout=120)
            window.notes.append(f"replay --since exit {done.returncode}: "
                                f"{(done.stdout + done.stderr).strip()[-300:]}")
        window.ended = time.monotonic()
    fault.__name__ = "duplicated and reordered events"
    return fault


# -- a phase --------------------------------------------------------------------------------

@dataclass
class PhaseResult:
    name: str
    summary: dict[str, Any]
    slowest_during: float
    slowest: float
    recovered_in: float | None       # restore → first accepted hold or pay
    ready_in: float | None           # restore → /readyz 200
    verdict: checks.Verdict
    notes: list[str]
    error: str | None = None
    back_in: float | None = None     # restore → accepted holds and pays at 80% of the rate
    rate: float = 0.0                # requests sent per second over the phase
    during: tuple[int, float] = (0, 0.0)  # holds and pays accepted while the fault lasted, s
    @property
    def ok(self) -> bool:
        return self.error is None and self.verdict.ok and self.summary["hangs"] == 0


async def phase(target: Target, name: str, fault: Fault | None, *, seconds: float,
                fault_at: float, workers: int = 16, rows: int = 12, cols: int = 20,
                after: float = 2.0, allowed: frozenset[str] = frozenset({"409", "503", "504"}),
                make_fault: Callable[[datetime], Fault] | None = None) -> PhaseResult:
    """A rush on a fresh show of ``seconds``; the fault starts ``fault_at`` seconds in (the rush
    goes on while it lasts, and for the rest of ``seconds`` after, at least ``after`` seconds
    past the moment /readyz is 200 again); then the holds'
    last expiry plus a sweep, and the invariants. Refusals other than ``allowed`` (statuses, or
    "conn_error") are reported as broken: a dependency down must mean 503/504, not a 500."""
    await ready(target)
    show = await make_show(target.api, target.manager, rows, cols, label=name)
    began_at = datetime.now(UTC) - timedelta(seconds=1)
    fault = fault or make_fault(began_at)
    rush = Rush(target.api, show, target.people, RushPlan(seconds=seconds, workers=workers))
    window = Window()
    error = None

    async def inject() -> None:
        try:
            await asyncio.sleep(fault_at)
            await fault(target, window)
            await ready(target, 90)
            window.ready_at = time.monotonic()
            rush.stop_at = max(rush.stop_at, window.ready_at + after)
        finally:
            rush.released.set()

    rush.released.clear()

    rush_began = time.monotonic()
    results = await asyncio.gather(rush.run(), inject(), return_exceptions=True)
    rush_ended = time.monotonic()
    for result in results:
        if isinstance(result, BaseException):
            error = f"{type(result).__name__}: {result}"
    record: Record = rush.record
    for step in window.after_rush:
        await step()
    ready_in = window.ready_at - window.ended if window.ready_at else None
    first = record.first_accepted_after(window.ended) if window.ended else None
    recovered_in = None if first is None else first - window.ended
    # the rate before the fault (its first second left out: the rush warming up)
    back_in = (record.back_to_rate_after(window.ended, (rush_began + 1, window.began))
               if window.ended and window.began > rush_began + 2 else None)
    # let every hold of the phase expire and one sweep pass, then check
    hold_seconds = target.settings.hold_seconds
    await asyncio.sleep(hold_seconds + target.settings.sweep_interval_seconds + 1.5)
    verdict = await checks.check(target.settings, target.api, record, target.people, [show["id"]])
    verdict.failures += record.unexpected(allowed) + window.failures
    return PhaseResult(name, record.summary(),
                       record.slowest(window.began, window.ended or time.monotonic(),
                                      in_flight=True),
                       record.slowest(), recovered_in, ready_in,
                       verdict, window.notes, error, back_in,
                       record.summary()["sent"] / max(rush_ended - rush_began, 0.001),
                       (record.accepted_between(window.began, window.ended),
                        window.ended - window.began))


def describe(result: PhaseResult) -> list[str]:
    s = result.summary
    refused = ", ".join(f"{k}: {v}" for k, v in s["refused"].items()) or "none"
    lines = [
        f"### {result.name} — {'OK' if result.ok else 'FAILED'}",
        "",
        f"- requests sent {s['sent']}, accepted {s['accepted']}, lost {result.verdict.lost}, "
        f"hangs (no answer in 10 s) {s['hangs']}",
        f"- refused by code: {refused}",
        f"- pays that answered 200: {s['paid']}; refunds that answered 200: {s['refunded']}",
        f"- slowest answer during the fault {result.slowest_during:.2f}s "
        f"(whole phase {result.slowest:.2f}s)",
        "- after the restore: /readyz 200 in "
        + (f"{result.ready_in:.1f}s" if result.ready_in is not None else "?")
        + ", first accepted hold or pay in "
        + (f"{result.recovered_in:.1f}s" if result.recovered_in is not None else "? (none)")
        + ", back to 80% of the rate before the fault in "
        + (f"{result.back_in:.1f}s" if result.back_in is not None else "? (not within the rush)"),
        f"- rush rate over the phase: {result.rate:.0f} requests/s; while the fault lasted "
        f"({result.during[1]:.1f}s) {result.during[0]} holds and pays accepted",
    ]
    lines += [f"- {n}" for n in result.notes + result.verdict.notes]
    if result.error:
        lines.append(f"- ERROR: {result.error}")
    lines += [f"- INVARIANT BROKEN: {f}" for f in result.verdict.failures[:20]]
    if len(result.verdict.failures) > 20:
        lines.append(f"- … and {len(result.verdict.failures) - 20} more")
    return lines + [""]
