"""Operator tools of order_svc: ``ttms-orders`` (or ``python -m order_svc.tools``).

    ttms-orders replay [--from-start | --offset N | --since TIME | --resume]
    ttms-orders dead-letters list [--consumer C]
    ttms-orders dead-letters show ID [--consumer C]
    ttms-orders dead-letters redrive (ID | --all) [--consumer C] [--to-queue] [--body FILE]
    ttms-orders reconcile [--wait SECONDS]

replay: rebuilds the order and box-office tables from the event log into fresh tables in a
scratch database (``<ns>_order_replay``), applying each event with the same handlers as the
live service, then swaps them in with one ``RENAME TABLE`` and applies whatever the live
service took in meanwhile. ``--from-start`` (the default) starts from empty tables and the
first event kept; ``--offset``/``--since`` start from a consistent copy of the live tables and
apply the events from that point (the inbox skips those already applied): use them when
events were lost before reaching order_svc's queue. Malformed events are skipped, as the live
consumer dead-letters them. The next offset is kept in ``stream_offsets`` (reader ``replay``);
``--resume`` starts there.

dead-letters: lists, shows (the full event) and re-drives what order_svc (or ``--consumer``)
dead-lettered. A re-drive publishes the event again to the events exchange with its routing
key, or with ``--to-queue`` only to the consumer's own queue; ``--body FILE`` replaces the
event by a corrected one (JSON, the same id). Consumers ignore an event they applied before.

reconcile: compares the box office, show by show, with ticket_svc's ledger (RPC
``ticket.ledger``), and prints every difference; exit status 1 when there is one. order_svc
may lag by a moment, so differences are re-checked for ``--wait`` seconds first.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.dialects.mysql import insert
from sqlalchemy.ext.asyncio import create_async_engine

from messages import errors
from messages.broker import Broker
from messages.contracts.base import Caller, Envelope, Role, utcnow
from messages.contracts.ticket import GetLedger
from messages.db import Database, run_on_server, to_db
from messages.deadletters import DeadLetter, DeadLetters
from messages.events import Delivery, EventHandler, apply_once
from messages.rpc import RpcClient
from messages.service import App
from messages.settings import Settings
from messages.streams import EventLog, StreamStart
from order_svc.box_office import sale_figures
from order_svc.handlers import handlers
from order_svc.tables import PROJECTION, sales, stream_offsets

log = logging.getLogger("ttms.order.tools")
BATCH = 100  # events per transaction while rebuilding
LANES = 8    # transactions at once; the events of one reservation always share a lane


# -- replay ---------------------------------------------------------------------------------

@dataclass
class ReplayReport:
    read: int = 0
    applied: int = 0
    malformed: list[str] = field(default_factory=list)
    first_offset: int | None = None
    next_offset: int | None = None
    caught_up: int = 0


class ReplayFailed(RuntimeError):
    pass


class Rebuilder:
    """Applies logged events to one database with the live service's handlers and inbox."""

    def __init__(self, settings: Settings, db: Database, report: ReplayReport) -> None:
        self.db = db
        self.report = report
        self._app = App("order", settings, db, None, None)  # handlers need only settings
        self._pending: list[tuple[Envelope, Any, Any]] = []

    async def add(self, offset: int, logged) -> None:
        report = self.report
        report.read += 1
        report.first_offset = offset if report.first_offset is None else report.first_offset
        report.next_offset = offset + 1
        try:
            envelope = logged.envelope()
            handler = handlers.events.get(envelope.type)
            event = handler.event.model_validate(envelope.data) if handler else None
        except (ValueError, ValidationError):
            report.malformed.append(logged.message_id or f"offset {offset}")
            return
        if handler is not None:
            self._pending.append((envelope, handler, event))
            if len(self._pending) >= BATCH * LANES:
                await self.flush()

    async def flush(self) -> None:
        """Apply what is pending, in lanes at once: the handlers give the same end state in
        any order of events, and a reservation's (or a show's) events stay in log order."""
        lanes: list[list[tuple[Envelope, Any, Any]]] = [[] for _ in range(LANES)]
        for item in self._pending:
            event = item[2]
            key = (getattr(event, "reservation_id", None)
                   or getattr(getattr(event, "schedule", None), "id", 0))
            lanes[key % LANES].append(item)
        self._pending = []
        await asyncio.gather(*(self._apply_lane(lane) for lane in lanes if lane))

    async def _apply_lane(self, pending: list[tuple[Envelope, Any, Any]]) -> None:
        try:
            applied = await self._apply(pending)
        except ReplayFailed:
            raise
        except Exception:  # noqa: BLE001 - find the event at fault, one per transaction
            applied = 0
            for one in pending:
                applied += await self._apply([one])
        self.report.applied += applied

    async def _apply(self, batch: list[tuple[Envelope, Any, Any]]) -> int:
        """One transaction, as the live consumer applies a batch (``apply_once``)."""
        deliveries = [Delivery(envelope, EventHandler(
            handler.event, lambda event, tx, fn=handler.fn: fn(event, tx, self._app), True),
            event) for envelope, handler, event in batch]
        delay = 0.1
        while True:
            try:
                return await apply_once(self.db, deliveries)
            except Exception as exc:
                if errors.from_infrastructure(exc) is None:
                    if len(batch) == 1:
                        raise ReplayFailed(
                            f"event {batch[0][0].id} ({batch[0][0].type}) failed: {exc}") from exc
                    raise
                await asyncio.sleep(delay)  # a deadlock with the live service: try again
                delay = min(delay * 2, 2.0)


async def replay(settings: Settings, start: StreamStart = "first", *,
                 from_live: bool = False) -> ReplayReport:
    """One replay at a time per namespace (they share the scratch database)."""
    engine = create_async_engine(settings.database_url("order", with_database=False))
    name = f"{settings.namespace}.order.replay"
    try:
        async with engine.connect() as conn:
            if not (await conn.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": name})).scalar():
                raise ReplayFailed("another replay of this namespace is running")
            try:
                return await _replay(settings, start, from_live)
            finally:
                await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})
    finally:
        await engine.dispose()


async def _replay(settings: Settings, start: StreamStart, from_live: bool) -> ReplayReport:
    live, scratch, old = (f"`{settings.database_name(s)}`"
                          for s in ("order", "order_replay", "order_old"))
    report = ReplayReport()
    await run_on_server(settings, [
        f"DROP DATABASE IF EXISTS {scratch}",
        f"CREATE DATABASE {scratch} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        *(f"CREATE TABLE {scratch}.{t} LIKE {live}.{t}" for t in PROJECTION)])
    if from_live:  # a consistent copy: the live service waits for the few moments it takes
        await run_on_server(settings, [
            "LOCK TABLES " + ", ".join([f"{live}.{t} READ" for t in PROJECTION]
                                       + [f"{scratch}.{t} WRITE" for t in PROJECTION]),
            *(f"INSERT INTO {scratch}.{t} SELECT * FROM {live}.{t}" for t in PROJECTION),
            "UNLOCK TABLES"])
    scratch_db = Database(settings, "order_replay")
    live_db = Database(settings, "order")
    try:
        async with EventLog(settings) as event_log:
            rebuilder = Rebuilder(settings, scratch_db, report)
            async for logged in event_log.read(start):
                await rebuilder.add(logged.offset, logged)
            await rebuilder.flush()
            await run_on_server(settings, [
                f"DROP DATABASE IF EXISTS {old}",
                f"CREATE DATABASE {old}",
                "RENAME TABLE " + ", ".join(
                    f"{live}.{t} TO {old}.{t}, {scratch}.{t} TO {live}.{t}"
                    for t in PROJECTION)])
            # What the live service applied to the old tables while the rebuild ran.
            catch_up = ReplayReport()
            rebuilder = Rebuilder(settings, live_db, catch_up)
            resume = report.next_offset if report.next_offset is not None else start
            async for logged in event_log.read(resume):
                await rebuilder.add(logged.offset, logged)
            await rebuilder.flush()
            report.caught_up = catch_up.applied
            report.next_offset = catch_up.next_offset or report.next_offset
        if report.next_offset is not None:
            async with live_db.transaction() as tx:
                statement = insert(stream_offsets).values(
                    reader="replay", next_offset=report.next_offset, updated_at=to_db(utcnow()))
                await tx.execute(statement.on_duplicate_key_update(
                    next_offset=statement.inserted.next_offset,
                    updated_at=statement.inserted.updated_at))
    finally:
        await scratch_db.dispose()
        await live_db.dispose()
        await run_on_server(settings, [f"DROP DATABASE IF EXISTS {old}",
                                 f"DROP DATABASE IF EXISTS {scratch}"])
    return report


async def stored_offset(settings: Settings) -> int | str:
    """Where the last replay stopped ("first" if none ran)."""
    db = Database(settings, "order")
    try:
        async with db.read() as conn:
            offset = (await conn.execute(select(stream_offsets.c.next_offset).where(
                stream_offsets.c.reader == "replay"))).scalar()
    finally:
        await db.dispose()
    return "first" if offset is None else offset


# -- reconcile ------------------------------------------------------------------------------

FIELDS = ("tickets_sold", "tickets_refunded", "gross", "refunded")


async def box_office_by_show(settings: Settings) -> dict[int, dict[str, int]]:
    db = Database(settings, "order")
    try:
        async with db.read() as conn:
            rows = (await conn.execute(select(*sale_figures(
                sales.c.schedule_id, func.max(sales.c.play_id).label("play_id")))
                .group_by(sales.c.schedule_id))).all()
    finally:
        await db.dispose()
    return {r.schedule_id: {"play_id": r.play_id, "tickets_sold": r.sold,
                            "tickets_refunded": int(r.refunded_n), "gross": int(r.gross),
                            "refunded": int(r.refunded_money)} for r in rows}


async def ticket_ledger(settings: Settings) -> dict[int, dict[str, int]]:
    broker = Broker(settings.amqp_url, f"{settings.namespace}-order-tools",
                    settings.amqp_heartbeat_seconds)
    rpc = RpcClient(broker, settings.names, settings.rpc_timeout_seconds)
    await broker.start(wait=10)
    try:
        answer = await rpc.ask(GetLedger(), Caller(user_id=None, role=Role.admin), timeout=30)
    finally:
        await broker.stop()
    return {line["schedule_id"]: line for line in answer["schedules"]}


def differences(box_office: dict[int, dict[str, int]],
                ledger: dict[int, dict[str, int]]) -> list[str]:
    found = []
    for schedule_id in sorted(box_office.keys() | ledger.keys()):
        ours, theirs = box_office.get(schedule_id), ledger.get(schedule_id)
        where = f"schedule {schedule_id}"
        if ours is None and any(theirs[f] for f in FIELDS):
            found.append(f"{where}: missing from the box office (ledger: "
                         + ", ".join(f"{f} {theirs[f]}" for f in FIELDS) + ")")
            continue
        if theirs is None:
            found.append(f"{where}: not in ticket_svc's ledger (box office: "
                         + ", ".join(f"{f} {ours[f]}" for f in FIELDS) + ")")
            continue
        found += [f"{where}: {f} box office {ours[f]} != ledger {theirs[f]}"
                  for f in FIELDS if ours[f] != theirs[f]]
    return found


async def reconcile(settings: Settings, wait: float = 5.0) -> tuple[list[str], int]:
    """Differences (empty when the figures agree) and how many shows were compared."""
    deadline = time.monotonic() + wait
    while True:
        ledger = await ticket_ledger(settings)
        box_office = await box_office_by_show(settings)
        found = differences(box_office, ledger)
        if not found or time.monotonic() > deadline:
            return found, len(box_office.keys() | ledger.keys())
        await asyncio.sleep(0.5)


# -- command line ---------------------------------------------------------------------------

def _describe(letter: DeadLetter) -> dict[str, Any]:
    try:
        body: Any = orjson.loads(letter.body)
    except orjson.JSONDecodeError:
        body = letter.body.decode(errors="replace")
    return {"id": letter.id, "consumer": letter.consumer, "routing_key": letter.routing_key,
            "reason": letter.reason, "deaths": letter.deaths,
            "died_at": letter.died_at.isoformat() if letter.died_at else None,
            "queue": letter.queue, "event": body}


async def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    consumers = [args.consumer] if args.consumer else None
    async with DeadLetters(settings) as dead:
        if args.action == "list":
            letters = await dead.list(consumers)
            for letter in letters:
                died = letter.died_at.isoformat() if letter.died_at else "?"
                print(f"{letter.id}  {letter.consumer}  {letter.routing_key}  "
                      f"{letter.reason}  {died}")
            print(f"{len(letters)} dead letter(s)", file=sys.stderr)
            return 0
        if args.action == "show":
            letters = [x for x in await dead.list(consumers) if x.id == args.id]
            if not letters:
                print(f"no dead letter {args.id}", file=sys.stderr)
                return 1
            for letter in letters:
                print(orjson.dumps(_describe(letter), option=orjson.OPT_INDENT_2).decode())
            return 0
        # redrive
        if not args.all and not args.id:
            print("name a dead letter ID, or --all", file=sys.stderr)
            return 2
        bodies = {}
        if args.body:
            if not args.id:
                print("--body replaces one event: name its ID", file=sys.stderr)
                return 2
            raw = await asyncio.to_thread(Path(args.body).read_bytes)
            try:
                envelope = Envelope.model_validate(orjson.loads(raw))
            except (ValueError, ValidationError) as exc:
                print(f"{args.body} is not an event envelope: {exc}", file=sys.stderr)
                return 2
            if envelope.id != args.id:
                print(f"the corrected event must keep the id {args.id}", file=sys.stderr)
                return 2
            bodies[args.id] = orjson.dumps(envelope.model_dump(mode="json"))
        done = await dead.redrive(consumers, None if args.all else {args.id},
                                  to_queue=args.to_queue, bodies=bodies)
        for letter in done:
            target = f"queue of {letter.consumer}" if args.to_queue else letter.routing_key
            print(f"re-drove {letter.id} ({letter.routing_key}) to {target}")
        if args.id and not done:
            print(f"no dead letter {args.id}", file=sys.stderr)
            return 1
        return 0


async def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """One command; its exit status. What it reports goes to stdout, problems to stderr."""
    settings = settings or Settings()
    if args.command == "replay":
        start: StreamStart = "first"
        if args.offset is not None:
            start = args.offset
        elif args.since is not None:
            start = args.since
        elif args.resume:
            start = await stored_offset(settings)
        began = time.monotonic()
        report = await replay(settings, start, from_live=start != "first")
        print(f"replayed {report.read} logged events from offset {report.first_offset}: "
              f"{report.applied} applied, {len(report.malformed)} malformed skipped, "
              f"{report.caught_up} taken in by the live service meanwhile; next offset "
              f"{report.next_offset}; {time.monotonic() - began:.1f}s")
        for event_id in report.malformed:
            print(f"skipped malformed event {event_id}", file=sys.stderr)
        return 0
    if args.command == "dead-letters":
        return await _dead_letters(settings, args)
    found, shows = await reconcile(settings, args.wait)
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} difference(s) over {shows} show(s)", file=sys.stderr)
        return 1
    print(f"box office matches ticket_svc's ledger over {shows} show(s)")
    return 0


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ttms-orders", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    rep = commands.add_parser("replay", help="rebuild orders and box office from the event log")
    start = rep.add_mutually_exclusive_group()
    start.add_argument("--from-start", action="store_true", help="the default")
    start.add_argument("--offset", type=int, help="re-apply from this log offset")
    start.add_argument("--since", type=_time, help="re-apply from this time (ISO 8601)")
    start.add_argument("--resume", action="store_true",
                       help="re-apply from where the last replay stopped")
    dead = commands.add_parser("dead-letters", help="list, show and re-drive dead letters")
    actions = dead.add_subparsers(dest="action", required=True)
    for name in ("list", "show", "redrive"):
        action = actions.add_parser(name)
        action.add_argument("--consumer", help="one consumer's queue (default: all)")
        if name != "list":
            action.add_argument("id", nargs="?" if name == "redrive" else None)
        if name == "redrive":
            action.add_argument("--all", action="store_true")
            action.add_argument("--to-queue", action="store_true",
                                help="only to the consumer's own queue")
            action.add_argument("--body", help="a file with the corrected event (same id)")
    rec = commands.add_parser("reconcile", help="compare the box office with ticket_svc")
    rec.add_argument("--wait", type=float, default=5.0,
                     help="seconds to let order_svc catch up before reporting")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(run(args))
    except (errors.ServiceError, ReplayFailed, ConnectionError, OSError) as exc:
        print(f"ttms-orders {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
