"""``python -m bench.order_events``: order_svc's CPU per applied sale event.

Starts TTMS in its own namespace (``--namespace``, default ``<TTMS_NAMESPACE>_oe``; its
databases and queues are reset first and the processes stopped at the end), then publishes a
steady stream of sale events straight onto the events exchange, as ticket_svc's outbox relay
would: holds, payments, releases and refunds of many reservations, interleaved as in a rush.
Reported: order_svc's CPU seconds (utime + stime from /proc, idle CPU subtracted) per event it
applied (counted in its inbox), its read and write system calls per event (a round trip to
the database or the broker is one of each), the transactions it retried, and how long it
took to drain.

    python -m bench.order_events [--rate 400] [--seconds 15] [--runs 1] [--keep]

The machine is shared: compare CPU per event between runs, not wall time. Measured
2026-11-26, alternating runs of the two versions, 300 events/s for 10 s (6 runs each): one
transaction per event on SQLAlchemy Core 3.9-5.0 ms (11.7 writes per event); plain SQL,
batches and queued statements 0.81-1.16 ms (3.0 writes: two round trips and the ack; the
reads, 6-7.6, follow how busy the database is). Flooded (3,000/s for 2 s): 5.1 ms against
0.42-0.46 ms (1.1 writes per event: batches with one ack each).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import asyncmy
import orjson

import launcher
from bench.processes import TICKS, _stat
from messages import broker
from messages.broker import delete_namespace
from messages.contracts import play as p
from messages.contracts import studio as st
from messages.contracts import ticket as t
from messages.contracts.base import Envelope
from messages.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
_ids = itertools.count(int(time.time() * 1000) % 10**9 * 1000)
NOW = datetime.now(UTC).replace(microsecond=0)


def env_for(namespace: str) -> dict[str, str]:
    return {
        "TTMS_NAMESPACE": namespace,
        "TTMS_GATEWAY_PORT": str(19000 + zlib.crc32(namespace.encode()) % 1000),
        "TTMS_GATEWAY_HOST": "127.0.0.1",
        "TTMS_JWT_SECRET": "bench-jwt-secret-0123456789abcdef0123456789",
        "TTMS_ADMIN_PASSWORD": "bench-admin-password",
        "TTMS_LOG_LEVEL": "WARNING",
    }


def catalogue(play_id: int, studio_id: int, schedule_id: int, starts_at: datetime,
              price: int) -> list[Envelope]:
    play = p.Play(id=play_id, name="Hamlet", kind="drama", area=None, rating="all",
                  duration_minutes=120, description=None,
                  starts_on=starts_at.date() - timedelta(days=30),
                  ends_on=starts_at.date() + timedelta(days=30), price=price)
    studio = st.Studio(id=studio_id, name="Hall", rows=20, cols=20, seat_count=400,
                       description=None, created_at=NOW)
    schedule = p.Schedule(id=schedule_id, play_id=play_id, studio_id=studio_id,
                          play_name="Hamlet", studio_name="Hall", starts_at=starts_at,
                          ends_at=starts_at + timedelta(hours=2), price=price,
                          status="scheduled")
    seats = [st.Seat(row=r, col=c, kind="seat") for r in range(1, 21) for c in range(1, 21)]
    return [Envelope.wrap(p.PlayCreated(play=play), "play"),
            Envelope.wrap(st.StudioCreated(studio=studio), "studio"),
            Envelope.wrap(p.ScheduleCreated(schedule=schedule, rows=20, cols=20, seats=seats),
                          "play")]


def rush(count: int, rng: random.Random) -> list[Envelope]:
    """About ``count`` sale events: each reservation is held; 70% are paid a moment later
    (a fifth of those refund a ticket later still), the rest are released."""
    play_id, studio_id, schedule_id = next(_ids), next(_ids), next(_ids)
    starts_at, price = NOW + timedelta(days=3), 4000
    timeline: list[tuple[float, int, Envelope]] = []
    order = itertools.count()
    moment = 0.0
    while len(timeline) < count:
        moment += 1.0
        rid, user = next(_ids), rng.randint(1, 5000)
        seats = [(rng.randint(1, 20), rng.randint(1, 20)) for _ in range(rng.randint(1, 3))]
        priced = [t.PricedSeat(row=r, col=c, price=price) for r, c in seats]
        common = {"reservation_id": rid, "user_id": user, "schedule_id": schedule_id,
                  "play_id": play_id}
        show = {"play_name": "Hamlet", "studio_id": studio_id, "starts_at": starts_at,
                "currency": "CNY", "total": price * len(seats)}
        timeline.append((moment, next(order), Envelope.wrap(t.TicketHeld(
            **common, **show, seats=priced, expires_at=NOW + timedelta(minutes=3),
            created_at=NOW), "ticket")))
        if rng.random() < 0.7:
            tickets = [t.SoldTicket(ticket_id=next(_ids), row=r, col=c, price=price)
                       for r, c in seats]
            timeline.append((moment + rng.uniform(5, 40), next(order), Envelope.wrap(
                t.TicketSold(**common, **show, tickets=tickets,
                             paid_at=NOW + timedelta(seconds=30)), "ticket")))
            if rng.random() < 0.2:
                ticket = tickets[0]
                timeline.append((moment + rng.uniform(40, 80), next(order), Envelope.wrap(
                    t.TicketRefunded(**common, ticket_id=ticket.ticket_id, studio_id=studio_id,
                                     row=ticket.row, col=ticket.col, price=price,
                                     currency="CNY", reason="requested",
                                     refunded_at=NOW + timedelta(hours=1)), "ticket")))
        else:
            timeline.append((moment + rng.uniform(5, 40), next(order), Envelope.wrap(
                t.TicketReleased(**common, seats=priced, reason="expired",
                                 released_at=NOW + timedelta(minutes=3)), "ticket")))
    timeline.sort()
    return catalogue(play_id, studio_id, schedule_id, starts_at, price) + [
        e for _, _, e in timeline]


def cpu(pid: int) -> float:
    fields = _stat(pid)
    if fields is None:
        raise RuntimeError(f"process {pid} is gone")
    return (int(fields[11]) + int(fields[12])) / TICKS


def syscalls(pid: int) -> tuple[int, int]:
    """(reads, writes) the process made: a round trip to the database or the broker is a
    write and a read, and on this machine the system calls cost as much as the Python."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["syscr"]), int(fields["syscw"])


async def inbox_count(settings: Settings) -> int:
    conn = await asyncmy.connect(host=settings.db_host, port=settings.db_port,
                                 user=settings.db_user,
                                 password=settings.db_password.get_secret_value(),
                                 db=settings.database_name("order"))
    try:
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT COUNT(*) FROM inbox")
            return (await cursor.fetchone())[0]
    finally:
        conn.close()


async def publish(settings: Settings, events: list[Envelope], rate: float) -> float:
    """Publish at ``rate`` events/s, a small burst every 10 ms; returns the seconds taken."""
    connection = await broker.connect(settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.get_exchange(settings.names.events_exchange)
        started = time.monotonic()
        for i, envelope in enumerate(events):
            due = started + i / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await exchange.publish(aio_pika.Message(
                orjson.dumps(envelope.model_dump(mode="json")), message_id=envelope.id,
                type=envelope.type, content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=envelope.type)
        return time.monotonic() - started
    finally:
        await connection.close()


def retries(run_dir: Path) -> int:
    """Transactions order_svc tried again (deadlocks, mostly), from its log."""
    log = run_dir / "logs" / "order_svc.log"
    return log.read_text(errors="replace").count("retrying") if log.exists() else 0


async def measure(settings: Settings, run_dir: Path, pid: int, rate: float, seconds: float,
                  seed: int) -> dict:
    idle_from, idle_cpu_from = time.monotonic(), cpu(pid)
    await asyncio.sleep(3)
    idle = (cpu(pid) - idle_cpu_from) / (time.monotonic() - idle_from)
    events = rush(int(rate * seconds), random.Random(seed))
    before_retries = retries(run_dir)
    before_count, before_cpu, began = await inbox_count(settings), cpu(pid), time.monotonic()
    before_calls = syscalls(pid)
    published = await publish(settings, events, rate)
    deadline = time.monotonic() + 120
    while (count := await inbox_count(settings)) < before_count + len(events):
        if time.monotonic() > deadline:
            raise RuntimeError(f"order_svc applied {count - before_count} of {len(events)}")
        await asyncio.sleep(0.05)
    took = time.monotonic() - began
    used = cpu(pid) - before_cpu
    calls = [after - before for after, before in zip(syscalls(pid), before_calls, strict=True)]
    return {"events": len(events), "rate": rate, "published_s": round(published, 2),
            "drained_s": round(took, 2), "cpu_s": round(used, 3),
            "idle_cpu_per_s": round(idle, 4), "retried": retries(run_dir) - before_retries,
            "reads_per_event": round(calls[0] / len(events), 2),
            "writes_per_event": round(calls[1] / len(events), 2),
            "cpu_ms_per_event": round(1000 * (used - idle * took) / len(events), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace",
                        default=f"{os.environ.get('TTMS_NAMESPACE', 'ttms')}_oe")
    parser.add_argument("--rate", type=float, default=400, help="events per second")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the processes running")
    args = parser.parse_args(argv)
    env = env_for(args.namespace)
    settings = Settings(**{k.removeprefix("TTMS_").lower(): v for k, v in env.items()})
    run_dir = ROOT / "run" / args.namespace
    run_dir.mkdir(parents=True, exist_ok=True)
    if not launcher.status(run_dir)["order_svc"]:
        launcher.down(run_dir)
        subprocess.run([sys.executable, "-m", "migrations", "drop"], cwd=ROOT, check=True,
                       env={**os.environ, **env}, capture_output=True)
        asyncio.run(delete_namespace(settings.amqp_url, settings.names))
        launcher.up(run_dir, env, timeout=120)
    try:
        pid = launcher.status(run_dir)["order_svc"]
        for run in range(args.runs):
            result = asyncio.run(measure(settings, run_dir, pid, args.rate, args.seconds, run))
            print(result, flush=True)
    finally:
        if not args.keep:
            launcher.down(run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
