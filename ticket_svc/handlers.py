"""ticket_svc's command and event handlers: one function per command or event.

The sale path (hold, pay, cancel, refund, seat map) is plain SQL through ``text()``: it is the
hot path, and each command is a few statements. The database is the only arbiter of who gets a
seat: a hold claims all its seats with one conditional UPDATE and checks the row count, so any
number of ticket_svc processes can run side by side.

A hold and an edit of its show (price, time) are decided by the show's row here: an edit's
sales check (``begin_show_edit``) locks it, each hold takes its shared lock, and a hold that finds
an edit allowed but not yet arrived gets the show from play_svc first.

Holds expire two ways: a delay queue (``messages.delay``) brings each hold back when due, and a
sweep releases overdue holds the broker never returned. Paying checks ``expires_at`` itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import asyncmy.errors
import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.exc import DBAPIError

from messages import errors
from messages.contracts import play as p
from messages.contracts import ticket as c
from messages.contracts.base import Caller, Role, utcnow
from messages.db import PlainTx, Tx, as_utc, to_db
from messages.delay import Delay
from messages.service import App, Context, Handlers
from ticket_svc import domain

log = logging.getLogger("ttms.ticket")
# INSERT IGNORE is how inventory and idempotency keys stay idempotent; asyncmy would log each
# ignored duplicate as a warning.
logging.getLogger("asyncmy").setLevel(logging.ERROR)
handlers = Handlers()

SERVICE_CALLER = {"user_id": None, "role": None}
STALE_PENDING_SECONDS = 30  # an idempotency key left pending this long was orphaned by a crash
KEY_LIFETIME = timedelta(hours=24)
SWEEP_GRACE_SECONDS = 1.0  # the sweep takes holds overdue by more than this

_expiry: Delay | None = None  # set by the start-up task; None until the broker is set up


# -- statements ----------------------------------------------------------------------------

SEAT_MAP = text(
    "SELECT sc.seat_rows, sc.seat_cols, sc.price, s.seat_row, s.seat_col, s.status "
    "FROM schedules sc LEFT JOIN seats s ON s.schedule_id = sc.id "
    "WHERE sc.id = :id ORDER BY s.seat_row, s.seat_col")

SHOW_SHARED = text("SELECT id FROM schedules WHERE id = :id LOCK IN SHARE MODE")

INSERT_RESERVATION = text(
    "INSERT INTO reservations (schedule_id, user_id, status, seats, total, currency, "
    "expires_at, created_at) VALUES (:schedule_id, :user_id, 'held', :seats, :total, "
    ":currency, :expires_at, :created_at)")

RESERVATION = text(
    "SELECT r.id, r.schedule_id, r.user_id, r.status, r.seats, r.total, r.currency, "
    "r.expires_at, r.created_at, r.paid_at, s.play_id, s.play_name, s.studio_id, s.starts_at, "
    "s.status AS schedule_status "
    "FROM reservations r JOIN schedules s ON s.id = r.schedule_id WHERE r.id = :id")

# One reservation by its primary key: FORCE INDEX because with no hint MariaDB 10.11 reads
# these through ix_reservations_due (status, expires_at, id), a range over every live hold,
# and under REPEATABLE READ locks it all: a payment, a cancel and an expiry then locked each
# other's holds (and the gap where new holds go) and deadlocked (issue 16 point 7).
MARK_PAID = text(
    "UPDATE reservations FORCE INDEX (PRIMARY) SET status = 'paid', paid_at = :now, "
    "payment_ref = :ref WHERE id = :id AND status = 'held' AND expires_at > :now")


END_HOLD = text(
    "UPDATE reservations FORCE INDEX (PRIMARY) SET status = :status, released_at = :now "
    "WHERE id = :id AND status = 'held'")

EXPIRE_HOLD = text(
    "UPDATE reservations FORCE INDEX (PRIMARY) SET status = 'expired', released_at = :now "
    "WHERE id = :id AND status = 'held' AND expires_at <= :now")


TICKETS_OF_RESERVATION = text(
    "SELECT id, reservation_id, schedule_id, user_id, seat_row, seat_col, price, status, "
    "sold_at, refunded_at FROM tickets WHERE reservation_id = :id ORDER BY id")

TICKET = text(
    "SELECT t.id, t.reservation_id, t.schedule_id, t.user_id, t.seat_row, t.seat_col, t.price, "
    "t.status, t.sold_at, t.refunded_at, s.play_id, s.studio_id, s.starts_at "
    "FROM tickets t JOIN schedules s ON s.id = t.schedule_id WHERE t.id = :id")

MARK_REFUNDED = text(
    "UPDATE tickets SET status = 'refunded', refunded_at = :now "
    "WHERE id = :id AND status = 'sold'")

FREE_SOLD_SEAT = text(
    "UPDATE seats SET status = 'available', reservation_id = NULL "
    "WHERE schedule_id = :schedule_id AND seat_row = :row AND seat_col = :col "
    "AND status = 'sold' AND reservation_id = :reservation_id")




def _seats_of_hold(assignment: str, seats: list[dict[str, int]]):
    """UPDATE the seats a hold owns, found by primary key in key order (as a hold claims
    them), never through an index range: a range lock there would make holds and payments
    of neighbouring reservations deadlock."""
    keys = sorted((s["row"], s["col"]) for s in seats)
    return text(f"UPDATE seats SET {assignment} WHERE schedule_id = :sid AND "
                f"{domain.seats_sql(keys)} AND reservation_id = :id AND status = 'held'")


def _deadlock(exc: DBAPIError) -> bool:
    """MariaDB chose this transaction as a deadlock victim, or a lock wait timed out."""
    code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return code in (1213, 1205)


async def _retry_deadlocks(run: Callable[[], Awaitable[Any]], tries: int = 4) -> Any:
    """Run a transaction again when MariaDB chose it as a deadlock victim (it was rolled
    back whole, so running it again is safe), as hold and pay do."""
    for attempt in range(tries):
        try:
            return await run()
        except DBAPIError as exc:
            if attempt == tries - 1 or not _deadlock(exc):
                raise
            await asyncio.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


# -- helpers -------------------------------------------------------------------------------

def _seats_of(row) -> list[dict[str, int]]:
    seats = row.seats
    return orjson.loads(seats) if isinstance(seats, str | bytes) else seats


def _ticket(row) -> c.Ticket:
    return c.Ticket(id=row.id, reservation_id=row.reservation_id, schedule_id=row.schedule_id,
                    user_id=row.user_id, row=row.seat_row, col=row.seat_col, price=row.price,
                    status=row.status, sold_at=as_utc(row.sold_at),
                    refunded_at=as_utc(row.refunded_at))


def _reservation(row, status: str | None = None, paid_at: datetime | None = None,
                 tickets: list[c.Ticket] | None = None) -> c.Reservation:
    return c.Reservation(
        id=row.id, schedule_id=row.schedule_id, user_id=row.user_id,
        seats=[c.PricedSeat(**s) for s in _seats_of(row)], total=row.total,
        currency=row.currency, status=status or row.status, expires_at=as_utc(row.expires_at),
        created_at=as_utc(row.created_at), paid_at=paid_at or as_utc(row.paid_at),
        tickets=tickets or [])


def _require_owner(caller: Caller, owner_id: int, what: str) -> None:
    if not caller.owns_or_at_least(owner_id, Role.clerk):
        raise errors.Forbidden(f"only its owner or box-office staff may use this {what}")


def _signed_in(caller: Caller) -> int:
    if caller.user_id is None:
        raise errors.Unauthorized("sign in first")
    return caller.user_id


# -- inventory: the copy of each show, and its seats ----------------------------------------

async def _store_inventory(tx: Tx, schedule: p.Schedule, rows: int, cols: int,
                           seats: list[Any], version: int = 0) -> None:
    """Create a show's schedule copy and inventory unless they exist (idempotent: the event
    and a reservation that came first may both do it)."""
    created = await tx.execute(text(
        "INSERT IGNORE INTO schedules (id, play_id, studio_id, play_name, starts_at, price, "
        "status, seat_rows, seat_cols, version) VALUES (:id, :play_id, :studio_id, "
        ":play_name, :starts_at, :price, :status, :rows, :cols, :version)"),
        {"id": schedule.id, "play_id": schedule.play_id, "studio_id": schedule.studio_id,
         "play_name": schedule.play_name, "starts_at": to_db(schedule.starts_at),
         "price": schedule.price, "status": schedule.status.value, "rows": rows, "cols": cols,
         "version": version})
    if created.rowcount == 0:
        return
    values = [f"({int(schedule.id)},{int(s.row)},{int(s.col)},"
              f"'{'available' if s.kind == 'seat' else 'unavailable'}')" for s in seats]
    for start in range(0, len(values), 2000):
        await tx.execute(text(
            "INSERT IGNORE INTO seats (schedule_id, seat_row, seat_col, status) VALUES "
            + ",".join(values[start:start + 2000])))


async def _fetch_inventory(app: App, schedule_id: int) -> None:
    """The show is not known here yet (its event is still on its way): ask play_svc."""
    data = await app.rpc.call("play.schedule_inventory", {"id": schedule_id}, SERVICE_CALLER)
    inventory = p.ScheduleInventory.model_validate(data)
    async with app.db.transaction() as tx:
        await _store_inventory(tx, inventory.schedule, inventory.rows, inventory.cols,
                               inventory.seats, inventory.version)


async def _catch_up_with_edit(app: App, schedule_id: int, version: int) -> None:
    """A hold found an edit of the show allowed (``edit_version``) that has not reached this
    copy. play_svc answers once that edit committed, or after ending it if it never will, with
    the show as it stays; this copy takes it if it is not newer already."""
    try:  # within the hold's own deadline, so the buyer learns why
        data = await app.rpc.call("play.schedule_inventory", {"id": schedule_id,
                                                              "at_least": version},
                                  SERVICE_CALLER, app.settings.rpc_timeout_seconds / 2)
    except errors.Timeout:
        raise errors.ServiceUnavailable("the show is being changed and play_svc did not "
                                        "say how; try again") from None
    inventory = p.ScheduleInventory.model_validate(data)
    async with app.db.transaction() as tx:
        await _apply_schedule(tx, inventory.schedule, inventory.version)


async def _apply_schedule(tx: Tx, s: p.Schedule, version: int) -> None:
    """An edited show's facts, unless this copy already has a later edit (events and the
    answers of ``_catch_up_with_edit`` may arrive in any order)."""
    await tx.execute(text(
        "UPDATE schedules SET play_name = :play_name, starts_at = :starts_at, price = :price, "
        "version = :version WHERE id = :id AND version <= :version"),
        {"id": s.id, "play_name": s.play_name, "starts_at": to_db(s.starts_at),
         "price": s.price, "version": version})


@handlers.event(p.ScheduleCreated)
async def on_schedule_created(event: p.ScheduleCreated, tx: Tx, app: App) -> None:
    await _store_inventory(tx, event.schedule, event.rows, event.cols, event.seats)


@handlers.event(p.ScheduleUpdated)
async def on_schedule_updated(event: p.ScheduleUpdated, tx: Tx, app: App) -> None:
    # Only a scheduled show is edited; a cancellation comes as schedule.cancelled.
    await _apply_schedule(tx, event.schedule, event.schedule_version)


@handlers.event(p.PlayUpdated)
async def on_play_updated(event: p.PlayUpdated, tx: Tx, app: App) -> None:
    await tx.execute(text("UPDATE schedules SET play_name = :name WHERE play_id = :id"),
                     {"id": event.play.id, "name": event.play.name})


@handlers.event(p.ScheduleCancelled)
async def on_schedule_cancelled(event: p.ScheduleCancelled, tx: Tx, app: App) -> None:
    """Release every hold of the show and refund every ticket sold for it."""
    s = event.schedule
    await tx.execute(text("UPDATE schedules SET status = 'cancelled' WHERE id = :id"),
                     {"id": s.id})
    now = utcnow()
    held = (await tx.execute(text(
        "SELECT id, schedule_id, user_id, seats FROM reservations "
        "WHERE schedule_id = :id AND status = 'held' FOR UPDATE"), {"id": s.id})).all()
    for row in held:
        await _release(tx, row, s.play_id, "show_cancelled", "cancelled", now)
    sold = (await tx.execute(text(
        "SELECT id, reservation_id, schedule_id, user_id, seat_row, seat_col, price "
        "FROM tickets WHERE schedule_id = :id AND status = 'sold' FOR UPDATE"),
        {"id": s.id})).all()
    if not sold:
        return
    await tx.execute(text(
        "UPDATE tickets SET status = 'refunded', refunded_at = :now "
        "WHERE schedule_id = :id AND status = 'sold'"), {"id": s.id, "now": to_db(now)})
    await tx.execute(text(
        "UPDATE seats SET status = 'available', reservation_id = NULL "
        "WHERE schedule_id = :id AND status = 'sold'"), {"id": s.id})
    currency = app.settings.currency
    for t in sold:
        tx.emit(c.TicketRefunded(
            ticket_id=t.id, reservation_id=t.reservation_id, user_id=t.user_id,
            schedule_id=t.schedule_id, play_id=s.play_id, studio_id=s.studio_id,
            row=t.seat_row, col=t.seat_col, price=t.price, currency=currency,
            reason="show_cancelled", refunded_at=now))


# -- the seat map ----------------------------------------------------------------------------

@handlers.command(c.GetSeats)
async def seats_for_sale(cmd: c.GetSeats, ctx: Context) -> dict[str, Any]:
    """One query; the answer is built as plain data (it is the most-read page in a rush)."""
    async with ctx.app.db.read() as conn:
        rows = (await conn.execute(SEAT_MAP, {"id": cmd.id})).all()
    if not rows:
        await _fetch_inventory(ctx.app, cmd.id)
        async with ctx.app.db.read() as conn:
            rows = (await conn.execute(SEAT_MAP, {"id": cmd.id})).all()
        if not rows:
            raise errors.NotFound("no such show")
    first = rows[0]
    price = first.price
    seats = [{"row": r.seat_row, "col": r.seat_col, "status": r.status, "price": price}
             for r in rows if r.seat_row is not None]
    available = sum(1 for r in rows if r.status == "available")
    return {"schedule_id": cmd.id, "rows": first.seat_rows, "cols": first.seat_cols,
            "available": available, "seats": seats}


# -- idempotency keys ----------------------------------------------------------------------

class _Key:
    """One Idempotency-Key of one user, and the request it came with. The first answer is
    recorded in the same transaction as the effect when there is one, so a crash never
    separates them. On plain asyncmy: a keyed request costs a round trip more than an
    unkeyed one (the claim), and a refusal two. The key is the user's whatever the command:
    the same key with another request (``fingerprint``) is refused, 422."""

    __slots__ = ("user_id", "command", "key", "fingerprint", "recorded")

    def __init__(self, user_id: int, command: str, key: str, fingerprint: str) -> None:
        self.user_id, self.command, self.key = user_id, command, key
        self.fingerprint = fingerprint
        self.recorded = False

    def _args(self, *first: Any) -> tuple[Any, ...]:
        return (*first, self.user_id, self.command, self.key)

    def _answer(self, ok: bool, answer: Any) -> dict[str, Any]:
        return {"ok": 1 if ok else 0, "answer": orjson.dumps(answer).decode(),
                "user_id": self.user_id, "command": self.command, "key": self.key}

    def record(self, tx: PlainTx, ok: bool, answer: Any) -> None:
        """Record the answer with the transaction's effect (it travels with the commit)."""
        tx.later(RECORD_KEY, self._answer(ok, answer))
        self.recorded = True

    async def record_alone(self, db, ok: bool, answer: Any) -> None:
        """Record an answer that had no effect to commit with (a refusal, or a read)."""
        await db.autocommit(RECORD_KEY, self._answer(ok, answer))
        self.recorded = True


RECORD_KEY = text(
    "UPDATE idempotency_keys SET state = 'done', ok = :ok, answer = :answer "
    "WHERE user_id = :user_id AND command = :command AND idem_key = :key")

Idempotent = Callable[[_Key | None], Awaitable[Any]]


def _fingerprint(command: str, cmd: c.Hold | c.Pay) -> str:
    """The request a key came with: its route (the command stands for the method and the
    path's template, ``id`` for the path's id) and its body, as canonical JSON (validated
    values, keys sorted), hashed."""
    request = cmd.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(orjson.dumps([command, request], option=orjson.OPT_SORT_KEYS)
                          ).hexdigest()


async def _idempotent(ctx: Context, command: str, cmd: c.Hold | c.Pay, run: Idempotent) -> Any:
    key = cmd.idempotency_key
    if key is None:
        return await run(None)
    idem = _Key(_signed_in(ctx.caller), command, key, _fingerprint(command, cmd))
    first = await _claim(ctx.app, idem)
    if first is not None:
        if first.fingerprint is not None and first.fingerprint != idem.fingerprint:
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request; nothing was done",
                details=[{"loc": ["header", "Idempotency-Key"],
                          "msg": "already used with another method, path or body"}])
        if first.state != "done":
            raise errors.Conflict("a request with this Idempotency-Key is still being handled",
                                  retry_after=1)
        answer = orjson.loads(first.answer)
        if first.ok:
            return answer
        raise errors.ServiceError.from_wire(answer)
    db = ctx.app.db
    try:
        result = await run(idem)
    except errors.ServiceError as exc:
        if exc.status < 500:  # a refusal is an answer too; a failure may be retried
            await idem.record_alone(db, False, exc.to_wire())
        else:
            await _forget(db, idem)
        raise
    except BaseException:
        await _forget(db, idem)
        raise
    if not idem.recorded:
        await idem.record_alone(db, True, _plain(result))
    return result


class _KeyRow(NamedTuple):
    state: str
    ok: int | None
    answer: str | None
    created_at: datetime
    fingerprint: str | None  # None: recorded before fingerprints were


async def _claim(app: App, idem: _Key) -> _KeyRow | _Busy | None:
    """Claim the key for this request: None if claimed, else the row that holds it.

    Each step is a statement by itself (autocommit) and only the first and the rare take-over
    write: concurrent duplicates then never lock each other into a deadlock."""
    now = utcnow()
    db = app.db
    claimed = await db.autocommit(
        "INSERT IGNORE INTO idempotency_keys (user_id, command, idem_key, fingerprint, state, "
        "created_at) VALUES (%s, %s, %s, %s, 'pending', %s)",
        (*idem._args(), idem.fingerprint, to_db(now)))
    if claimed:
        return None
    found = await db.fetch(
        "SELECT state, ok, answer, created_at, fingerprint FROM idempotency_keys "
        "WHERE user_id = %s AND idem_key = %s", (idem.user_id, idem.key))
    first = _KeyRow(*found[0]) if found else None
    expired = first is not None and as_utc(first.created_at) < now - KEY_LIFETIME
    orphaned = first is not None and first.state == "pending" and as_utc(
        first.created_at) < now - timedelta(seconds=STALE_PENDING_SECONDS) and (
        first.fingerprint in (None, idem.fingerprint))  # another request's key stays refused
    if first is None or not (expired or orphaned):
        return first or _BUSY
    # Expired, or left pending by a crash: take it over, if nobody else does it first.
    try:
        claimed = await db.autocommit(
            "UPDATE idempotency_keys SET state = 'pending', ok = NULL, answer = NULL, "
            "command = %s, fingerprint = %s, created_at = %s WHERE user_id = %s "
            "AND idem_key = %s AND created_at = %s",
            (idem.command, idem.fingerprint, to_db(now), idem.user_id, idem.key,
             first.created_at))
    except asyncmy.errors.Error:
        claimed = 0
    return None if claimed else _BUSY


class _Busy:
    state = "pending"


_BUSY = _Busy()


async def _forget(db, idem: _Key) -> None:
    await db.autocommit(
        "DELETE FROM idempotency_keys WHERE user_id = %s AND command = %s AND idem_key = %s "
        "AND state = 'pending'", idem._args())


def _plain(result: Any) -> Any:
    return result.model_dump(mode="json") if hasattr(result, "model_dump") else result


# -- hold ----------------------------------------------------------------------------------

@handlers.command(c.Hold)
async def hold(cmd: c.Hold, ctx: Context) -> c.Reservation:
    caller = ctx.caller
    buyer = _signed_in(caller)
    if cmd.customer_id is not None:
        if not caller.at_least(Role.clerk):
            raise errors.Forbidden("only box-office staff may sell on a customer's account")
        buyer = cmd.customer_id
    try:
        return await _idempotent(ctx, "hold", cmd, lambda idem: _hold(cmd, ctx, buyer, idem))
    except DBAPIError as exc:  # answered as 503; say why here
        log.warning("hold on show %s failed in the database: %s", cmd.schedule_id, exc.orig)
        raise


class _NotAllAvailable(Exception):
    pass


CUSTOMER_CHECK_SECONDS = 2.0  # well inside the hold's own deadline


async def _check_customer(app: App, caller: Caller, customer_id: int) -> None:
    """A box-office sale is made on an existing, enabled account. user_svc decides, with one
    RPC, made only by holds that name a ``customer_id`` (a clerk's): the others pay nothing.
    Checked when the hold is made, like the seats; an account disabled later keeps what it
    bought."""
    state = await app.rpc.call("user.account_status", {"id": customer_id}, caller,
                               timeout=CUSTOMER_CHECK_SECONDS)
    if not state["active"]:
        why = "is disabled" if state["exists"] else "names no account"
        raise errors.ValidationFailed(
            f"customer_id {why}; a sale needs an existing, enabled account",
            details=[{"loc": ["body", "customer_id"], "msg": f"customer_id {why}"}])


async def _hold(cmd: c.Hold, ctx: Context, buyer: int, idem: _Key | None) -> c.Reservation:
    app = ctx.app
    keys = domain.seat_keys(cmd.seats)
    if cmd.customer_id is not None:
        await _check_customer(app, ctx.caller, cmd.customer_id)
    await _refuse_early(app, cmd.schedule_id, keys)
    async with _claims.turn(cmd.schedule_id, keys) as claim:
        fetched = False
        for attempt in range(4):
            try:
                reservation = await _claim_seats(app, cmd.schedule_id, buyer, keys, idem)
                claim.won = True
                break
            except _UnknownShow:
                if fetched:
                    raise errors.NotFound("no such show") from None
                await _fetch_inventory(app, cmd.schedule_id)  # its event is still on its way
                fetched = True
            except _BeingEdited as edit:
                await _catch_up_with_edit(app, cmd.schedule_id, edit.version)
            except _NotAllAvailable:
                raise errors.SeatUnavailable(
                    "some of the seats are not available; nothing was held",
                    details=await _unavailable_details(app, cmd.schedule_id, keys)) from None
            except DBAPIError as exc:
                if attempt == 3 or not _deadlock(exc):
                    raise
                if idem is not None:
                    idem.recorded = False  # that answer was rolled back with its transaction
                await asyncio.sleep(0.005 * (attempt + 1))
        else:
            raise errors.Conflict("could not hold the seats; try again", retry_after=1)
    _schedule_expiry(reservation.id)
    return reservation


class _UnknownShow(Exception):
    pass


class _BeingEdited(Exception):
    def __init__(self, version: int) -> None:
        self.version = version


class _Claim:
    __slots__ = ("won",)

    def __init__(self) -> None:
        self.won = False


class _Claims:
    """Holds in this process that want a same seat of a show go to the database one at a
    time. When a seat comes free in a rush, every hold that read it free at that moment
    would open a transaction only to lose it; instead the first goes and the others wait for
    its outcome: refused at once if it won (the seat is held: a fact, not a guess), on in
    turn if it did not. Holds in other processes are not seen here: between them, the
    database decides, as always."""

    def __init__(self) -> None:
        self._turns: dict[tuple[int, int, int], asyncio.Future] = {}

    @asynccontextmanager
    async def turn(self, schedule_id: int, keys: list[tuple[int, int]]):
        while pending := {f for k in keys if (f := self._turns.get((schedule_id, *k)))}:
            for future in pending:
                won = await asyncio.shield(future)
                taken = [k for k in keys if k in won]
                if taken:
                    raise errors.SeatUnavailable(
                        "some of the seats are not available; nothing was held",
                        details=[{"loc": ["body", "seats", {"row": r, "col": col}],
                                  "msg": f"row {r} col {col}: held"} for r, col in taken])
        mine = asyncio.get_running_loop().create_future()
        for k in keys:
            self._turns[(schedule_id, *k)] = mine
        claim = _Claim()
        try:
            yield claim
        finally:
            for k in keys:
                if self._turns.get((schedule_id, *k)) is mine:
                    del self._turns[(schedule_id, *k)]
            mine.set_result(frozenset(keys) if claim.won else frozenset())


_claims = _Claims()


async def _refuse_early(app: App, schedule_id: int, keys: list[tuple[int, int]]) -> None:
    """Most holds of an on-sale rush are refused: refuse them with a plain read and no
    transaction, one read shared by the holds of a show that arrive together. Passing here
    proves nothing; the hold's transaction decides."""
    show, seats = await _seat_reads.look(app, schedule_id, keys)
    if show is None:
        return  # unknown here yet: the transaction fetches the show
    domain.check_sales_open(show[0], as_utc(show[1]), utcnow(),
                            app.settings.sales_cutoff_minutes)
    taken = _unavailable(seats, keys)
    if taken:
        raise errors.SeatUnavailable("some of the seats are not available; nothing was held",
                                     details=taken)


class _SeatReads:
    """Coalesces the early reads of holds: the holds of one show that start in the same
    event-loop turn (those of one batched RPC message, or of messages read together) share
    one query for the union of their seats, made on the next turn. A rush of many buyers on a
    few seats then costs one round trip per batch instead of one per buyer. The answer is a
    read of committed rows, exactly as one query per hold would give."""

    MAX_KEYS = 400  # seats per query; beyond it the next holds start another query

    def __init__(self) -> None:
        self._open: dict[int, tuple[set[tuple[int, int]], asyncio.Future]] = {}

    def look(self, app: App, schedule_id: int, keys: list[tuple[int, int]]) -> asyncio.Future:
        """(show status and start, or None if unknown) and {(row, col): seat status}."""
        batch = self._open.get(schedule_id)
        if batch is None or len(batch[0]) + len(keys) > self.MAX_KEYS:
            loop = asyncio.get_running_loop()
            batch = self._open[schedule_id] = (set(), loop.create_future())
            loop.call_soon(self._start, app, schedule_id, batch)
        batch[0].update(keys)
        # shield: a waiter that is cancelled must not cancel the read for the others
        return asyncio.shield(batch[1])

    def _start(self, app: App, schedule_id: int, batch) -> None:
        if self._open.get(schedule_id) is batch:
            del self._open[schedule_id]
        task = asyncio.ensure_future(self._read(app, schedule_id, batch))
        _background.add(task)
        task.add_done_callback(_background.discard)

    @staticmethod
    async def _read(app: App, schedule_id: int, batch) -> None:
        keys, future = batch
        try:
            rows = await app.db.fetch(
                "SELECT sc.status, sc.starts_at, s.seat_row, s.seat_col, s.status "
                "FROM schedules sc LEFT JOIN seats s ON s.schedule_id = sc.id AND "
                + domain.seats_sql(sorted(keys)) + " WHERE sc.id = %s", (schedule_id,))
        except Exception as exc:  # noqa: BLE001 - each waiting hold gets the failure
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result((rows[0][:2], {(r[2], r[3]): r[4] for r in rows}) if rows
                              else (None, {}))


_seat_reads = _SeatReads()


async def _claim_seats(app: App, schedule_id: int, buyer: int, keys: list[tuple[int, int]],
                       idem: _Key | None) -> c.Reservation:
    """The hold's one transaction: read the show, write the reservation, claim its seats (all
    or nothing) and its event."""
    settings = app.settings
    now = utcnow()
    async with app.db.plain_transaction(begin_later=True) as tx:
        # The show's row in share mode, so that an edit's sales check (begin_show_edit) is
        # before or after this whole hold; then the show and the requested seats as they are
        # now, in one read (BEGIN and the lock travel with it): a hold that lost a race since
        # the early read ends here, before any write.
        tx.later(SHOW_SHARED, {"id": schedule_id})
        rows = (await tx.execute(text(
            "SELECT sc.id, sc.play_id, sc.studio_id, sc.play_name, sc.starts_at, sc.price, "
            "sc.status, sc.version, sc.edit_version, s.seat_row, s.seat_col, "
            "s.status AS seat_status FROM schedules sc "
            "LEFT JOIN seats s ON s.schedule_id = sc.id AND " + domain.seats_sql(keys)
            + " WHERE sc.id = :id"), {"id": schedule_id})).all()
        if not rows:
            raise _UnknownShow
        show = rows[0]
        if show.version < show.edit_version:  # an edit passed its sales check: wait for it
            raise _BeingEdited(show.edit_version)
        domain.check_sales_open(show.status, as_utc(show.starts_at), now,
                                settings.sales_cutoff_minutes)
        taken = _unavailable({(r.seat_row, r.seat_col): r.seat_status for r in rows}, keys)
        if taken:
            raise errors.SeatUnavailable(
                "some of the seats are not available; nothing was held", details=taken)
        seats = [{"row": r, "col": col, "price": show.price} for r, col in keys]
        total = show.price * len(keys)
        expires_at = now + timedelta(seconds=settings.hold_seconds)
        # The reservation, its seats and its id in one round trip. All or nothing: one
        # conditional UPDATE over every requested seat, checked by its row count.
        tx.later(INSERT_RESERVATION, {
            "schedule_id": show.id, "user_id": buyer, "seats": orjson.dumps(seats).decode(),
            "total": total, "currency": settings.currency,
            "expires_at": to_db(expires_at), "created_at": to_db(now)})
        claimed = tx.later(text(
            "UPDATE seats SET status = 'held', reservation_id = LAST_INSERT_ID() "
            "WHERE schedule_id = :sid AND " + domain.seats_sql(keys)
            + " AND status = 'available'"), {"sid": show.id})
        reservation_id = (await tx.execute("SELECT LAST_INSERT_ID()")).scalar()
        if claimed.rowcount != len(keys):
            raise _NotAllAvailable
        reservation = c.Reservation(
            id=reservation_id, schedule_id=show.id, user_id=buyer,
            seats=[c.PricedSeat(**s) for s in seats], total=total,
            currency=settings.currency, status=c.ReservationStatus.held,
            expires_at=expires_at, created_at=now)
        tx.emit(c.TicketHeld(
            reservation_id=reservation_id, user_id=buyer, schedule_id=show.id,
            play_id=show.play_id, play_name=show.play_name, studio_id=show.studio_id,
            starts_at=as_utc(show.starts_at), seats=reservation.seats, total=total,
            currency=settings.currency, expires_at=expires_at, created_at=now))
        if idem is not None:
            idem.record(tx, True, reservation.model_dump(mode="json"))
    return reservation


async def _unavailable_details(app: App, schedule_id: int,
                               keys: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """After a lost race for a seat: which seats were taken."""
    async with app.db.read() as conn:
        found = {(r.seat_row, r.seat_col): r.status for r in (await conn.execute(text(
            "SELECT seat_row, seat_col, status FROM seats WHERE schedule_id = :sid AND "
            + domain.seats_sql(keys)),
            {"sid": schedule_id})).all()}
    return _unavailable(found, keys) or [
        {"loc": ["body", "seats"], "msg": "taken by another buyer just now"}]


def _unavailable(found: dict[tuple[int, int], str | None],
                 keys: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """The requested seats that are not available, as the contract's ``errors``."""
    details = []
    for r, col in keys:
        status = found.get((r, col), "not a seat")
        if status == "unavailable":
            status = "not a seat"
        if status != "available":
            details.append({"loc": ["body", "seats", {"row": r, "col": col}],
                            "msg": f"row {r} col {col}: {status}"})
    return details


def _schedule_expiry(reservation_id: int) -> None:
    """Hand the hold to the delay queue in the background: the buyer's answer does not wait
    for the broker's confirm, and a broker that is away costs the hold nothing (the sweep
    releases it instead)."""
    if _expiry is None:
        return
    task = asyncio.ensure_future(_publish_expiry(_expiry, reservation_id))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def _publish_expiry(expiry: Delay, reservation_id: int) -> None:
    try:
        await expiry.schedule({"reservation_id": reservation_id})
    except Exception as exc:  # noqa: BLE001 - the sweep is the fallback for this hold
        log.warning("could not schedule the expiry of hold %s (%s)", reservation_id, exc)


_background: set[asyncio.Task] = set()


# -- reservations: read, pay, cancel ---------------------------------------------------------

async def _load_reservation(conn, reservation_id: int, caller: Caller):
    row = (await conn.execute(RESERVATION, {"id": reservation_id})).first()
    if row is None:
        raise errors.NotFound("no such reservation")
    _require_owner(caller, row.user_id, "reservation")
    return row


async def _tickets_of(conn, reservation_id: int) -> list[c.Ticket]:
    return [_ticket(t) for t in
            (await conn.execute(TICKETS_OF_RESERVATION, {"id": reservation_id})).all()]


@handlers.command(c.GetReservation)
async def get_reservation(cmd: c.GetReservation, ctx: Context) -> c.Reservation:
    async with ctx.app.db.read() as conn:
        row = await _load_reservation(conn, cmd.id, ctx.caller)
        tickets = await _tickets_of(conn, row.id) if row.status == "paid" else []
    # Overdue but not yet released (the sweep runs every few seconds): it is expired already.
    overdue = row.status == "held" and as_utc(row.expires_at) <= utcnow()
    return _reservation(row, status="expired" if overdue else None, tickets=tickets)


@handlers.command(c.Pay)
async def pay(cmd: c.Pay, ctx: Context) -> c.Reservation:
    _signed_in(ctx.caller)
    try:
        paid = await _idempotent(ctx, "pay", cmd, lambda idem: _pay(cmd, ctx, idem))
    except DBAPIError as exc:
        log.warning("paying reservation %s failed in the database: %s", cmd.id, exc.orig)
        raise
    # Answered "paid": committed, and for good. (A key recorded before keys had fingerprints
    # may still answer for another reservation, which says nothing of this one.)
    if (paid["id"] if isinstance(paid, dict) else paid.id) == cmd.id:
        _ended.add(cmd.id)
    return paid


async def _pay(cmd: c.Pay, ctx: Context, idem: _Key | None) -> c.Reservation:
    app = ctx.app
    for _ in range(5):
        now = utcnow()
        expired = False
        try:
            async with app.db.plain_transaction(begin_later=True) as tx:
                row = await _load_reservation(tx, cmd.id, ctx.caller)
                if row.status == "paid":  # paying twice changes nothing
                    return _reservation(row, tickets=await _tickets_of(tx, row.id))
                if row.status != "held":
                    raise errors.HoldExpired(f"the hold was {row.status}")
                if as_utc(row.expires_at) <= now:
                    # Do not wait for the delay queue or the sweep: release it now.
                    await _release(tx, row, row.play_id, "expired", "expired", now)
                    expired = True
                else:
                    domain.check_sales_open(row.schedule_status, as_utc(row.starts_at), now,
                                            app.settings.sales_cutoff_minutes)
                    return await _sell(tx, row, now, app, idem, cmd.payment_ref)
        except DBAPIError as exc:
            if not _deadlock(exc):
                raise
            if idem is not None:
                idem.recorded = False  # that answer was rolled back with its transaction
            continue
        except _ChangedMeanwhile:
            # Someone else changed it between our read and our update (paid, expired,
            # cancelled); what this transaction wrote was rolled back: read it again.
            continue
        if expired:
            raise errors.HoldExpired("the hold expired before it was paid")
    raise errors.Conflict("the reservation keeps changing; try again", retry_after=1)


class _ChangedMeanwhile(Exception):
    pass


async def _sell(tx: Tx, row, now: datetime, app: App, idem: _Key | None,
                payment_ref: str | None) -> c.Reservation:
    """Mark the hold paid, its seats sold and its tickets written, in one round trip: the
    reservation's conditional UPDATE decides, and when it changed nothing (the hold was paid,
    expired or cancelled since our read) the transaction is rolled back, tickets and all."""
    seats = _seats_of(row)
    paid = tx.later(MARK_PAID, {"id": row.id, "now": to_db(now), "ref": payment_ref})
    sold = tx.later(_seats_of_hold("status = 'sold'", seats),
                    {"sid": row.schedule_id, "id": row.id})
    values = ", ".join(
        f"({int(row.id)},{int(row.schedule_id)},{int(row.user_id)},{int(s['row'])},"
        f"{int(s['col'])},{int(s['price'])},'sold',:now)" for s in seats)
    created = (await tx.execute(text(
        "INSERT INTO tickets (reservation_id, schedule_id, user_id, seat_row, seat_col, price, "
        "status, sold_at) VALUES " + values + " RETURNING id, seat_row, seat_col, price"),
        {"now": to_db(now)})).all()
    if paid.rowcount != 1:
        raise _ChangedMeanwhile
    if sold.rowcount != len(seats):  # cannot happen while holds own their seats
        raise errors.InternalError(f"reservation {row.id} did not own all of its seats")
    tickets = [c.Ticket(id=t.id, reservation_id=row.id, schedule_id=row.schedule_id,
                        user_id=row.user_id, row=t.seat_row, col=t.seat_col, price=t.price,
                        status=c.TicketStatus.sold, sold_at=now) for t in created]
    tx.emit(c.TicketSold(
        reservation_id=row.id, user_id=row.user_id, schedule_id=row.schedule_id,
        play_id=row.play_id, play_name=row.play_name, studio_id=row.studio_id,
        starts_at=as_utc(row.starts_at),
        tickets=[c.SoldTicket(ticket_id=t.id, row=t.row, col=t.col, price=t.price)
                 for t in tickets],
        total=row.total, currency=row.currency, paid_at=now))
    reservation = _reservation(row, status="paid", paid_at=now, tickets=tickets)
    if idem is not None:
        idem.record(tx, True, reservation.model_dump(mode="json"))
    return reservation


async def _release(tx: Tx, row, play_id: int, reason: str, status: str,
                   now: datetime) -> bool:
    """End one hold (expired or cancelled) and free its seats; False if it was not held."""
    ended = await tx.execute(END_HOLD, {"id": row.id, "status": status, "now": to_db(now)})
    if ended.rowcount == 0:
        return False
    await _free_seats(tx, row, play_id, reason, now)
    return True


async def _free_seats(tx: Tx, row, play_id: int, reason: str, now: datetime) -> None:
    """The seats of a hold that just ended are available again; announce it."""
    await tx.execute(_seats_of_hold("status = 'available', reservation_id = NULL",
                                    _seats_of(row)), {"sid": row.schedule_id, "id": row.id})
    tx.emit(c.TicketReleased(
        reservation_id=row.id, user_id=row.user_id, schedule_id=row.schedule_id,
        play_id=play_id, seats=[c.PricedSeat(**s) for s in _seats_of(row)], reason=reason,
        released_at=now))


@handlers.command(c.CancelReservation)
async def cancel_reservation(cmd: c.CancelReservation, ctx: Context) -> None:
    await _retry_deadlocks(lambda: _cancel(cmd, ctx))
    _ended.add(cmd.id)  # cancelled now, or had already ended: not held, for good


async def _cancel(cmd: c.CancelReservation, ctx: Context) -> None:
    async with ctx.app.db.transaction() as tx:
        row = await _load_reservation(tx, cmd.id, ctx.caller)
        if row.status == "paid":
            raise errors.Conflict("the reservation is paid; refund its tickets instead")
        if row.status == "held":
            released = await _release(tx, row, row.play_id, "cancelled", "cancelled",
                                      utcnow())
            if not released:  # paid or expired meanwhile
                again = (await tx.execute(RESERVATION, {"id": cmd.id})).first()
                if again is not None and again.status == "paid":
                    raise errors.Conflict("the reservation is paid; refund its tickets instead")


# -- tickets and refunds -----------------------------------------------------------------------

@handlers.command(c.ListTickets)
async def list_tickets(cmd: c.ListTickets, ctx: Context) -> dict[str, Any]:
    caller = ctx.caller
    me = _signed_in(caller)
    staff = caller.at_least(Role.clerk)
    if cmd.user_id is not None and cmd.user_id != me and not staff:
        raise errors.Forbidden("only box-office staff may list other users' tickets")
    where, params = [], {"limit": cmd.page_size, "offset": cmd.offset}
    user_id = cmd.user_id if cmd.user_id is not None else (
        None if staff and cmd.schedule_id is not None else me)
    if user_id is not None:
        where.append("user_id = :user_id")
        params["user_id"] = user_id
    if cmd.schedule_id is not None:
        where.append("schedule_id = :schedule_id")
        params["schedule_id"] = cmd.schedule_id
    clause = " AND ".join(where) or "1 = 1"
    async with ctx.app.db.read() as conn:
        total = (await conn.execute(text(f"SELECT COUNT(*) FROM tickets WHERE {clause}"),
                                    params)).scalar()
        rows = (await conn.execute(text(
            "SELECT id, reservation_id, schedule_id, user_id, seat_row, seat_col, price, "
            f"status, sold_at, refunded_at FROM tickets WHERE {clause} "
            "ORDER BY id DESC LIMIT :limit OFFSET :offset"), params)).all()
    return {"items": [_ticket(r).model_dump(mode="json") for r in rows], "total": total,
            "page": cmd.page, "page_size": cmd.page_size}


@handlers.command(c.Refund)
async def refund(cmd: c.Refund, ctx: Context) -> c.Ticket:
    return await _retry_deadlocks(lambda: _refund(cmd, ctx))


async def _refund(cmd: c.Refund, ctx: Context) -> c.Ticket:
    app = ctx.app
    async with app.db.plain_transaction(begin_later=True) as tx:
        row = (await tx.execute(TICKET, {"id": cmd.id})).first()
        if row is None:
            raise errors.NotFound("no such ticket")
        _require_owner(ctx.caller, row.user_id, "ticket")
        if row.status == "refunded":  # refunding twice changes nothing
            return _ticket(row)
        now = utcnow()
        domain.check_refund_open(as_utc(row.starts_at), now)
        done = await tx.execute(MARK_REFUNDED, {"id": row.id, "now": to_db(now)})
        if done.rowcount == 0:  # refunded meanwhile by a concurrent request
            return _ticket((await tx.execute(TICKET, {"id": cmd.id})).first())
        tx.later(FREE_SOLD_SEAT, {"schedule_id": row.schedule_id, "row": row.seat_row,
                                  "col": row.seat_col, "reservation_id": row.reservation_id})
        tx.emit(c.TicketRefunded(
            ticket_id=row.id, reservation_id=row.reservation_id, user_id=row.user_id,
            schedule_id=row.schedule_id, play_id=row.play_id, studio_id=row.studio_id,
            row=row.seat_row, col=row.seat_col, price=row.price, currency=app.settings.currency,
            reason="requested", refunded_at=now))
    ticket = _ticket(row)
    return ticket.model_copy(update={"status": c.TicketStatus.refunded, "refunded_at": now})


# -- for other services ----------------------------------------------------------------------

@handlers.command(c.GetSalesActivity)
async def sales_activity(cmd: c.GetSalesActivity, ctx: Context) -> c.SalesActivity:
    ids = sorted(set(cmd.schedule_ids))
    found: dict[int, Any] = {}
    if ids:
        async with ctx.app.db.read() as conn:
            found = {r.schedule_id: r for r in (await conn.execute(text(
                "SELECT schedule_id, SUM(status = 'held') AS held, SUM(status = 'sold') AS sold "
                "FROM seats WHERE schedule_id IN :ids AND status IN ('held', 'sold') "
                "GROUP BY schedule_id").bindparams(bindparam("ids", expanding=True)),
                {"ids": ids})).all()}
    return c.SalesActivity(schedules=[
        c.SalesActivityLine(schedule_id=i, held=int(found[i].held) if i in found else 0,
                            sold=int(found[i].sold) if i in found else 0) for i in ids])


@handlers.command(c.BeginShowEdit)
async def begin_show_edit(cmd: c.BeginShowEdit, ctx: Context) -> c.SalesActivityLine:
    """play_svc is about to edit the show. The count of its held and sold seats and, when both
    are 0, the version holds must wait for, are one transaction under the show's row lock:
    a hold holds that row's shared lock from its first read to its commit, so each hold is
    wholly before the count (and counted) or after it (and waits for the edit)."""
    for attempt in range(2):
        async with ctx.app.db.transaction() as tx:
            known = (await tx.execute(text(
                "SELECT id FROM schedules WHERE id = :id FOR UPDATE"),
                {"id": cmd.schedule_id})).first()
            if known is not None:
                found = (await tx.execute(text(
                    "SELECT COALESCE(SUM(status = 'held'), 0) AS held, "
                    "COALESCE(SUM(status = 'sold'), 0) AS sold FROM seats "
                    "WHERE schedule_id = :id AND status IN ('held', 'sold')"),
                    {"id": cmd.schedule_id})).first()
                held, sold = int(found.held), int(found.sold)
                if not (held or sold):
                    await tx.execute(text(
                        "UPDATE schedules SET edit_version = GREATEST(edit_version, :v) "
                        "WHERE id = :id"), {"id": cmd.schedule_id, "v": cmd.version})
                return c.SalesActivityLine(schedule_id=cmd.schedule_id, held=held, sold=sold)
        if attempt == 0:  # not known here yet, so nothing is sold: take it, then decide
            await _fetch_inventory(ctx.app, cmd.schedule_id)
    raise errors.NotFound("no such show")


@handlers.command(c.GetLedger)
async def ledger(cmd: c.GetLedger, ctx: Context) -> c.Ledger:
    async with ctx.app.db.read() as conn:
        rows = (await conn.execute(text(
            "SELECT t.schedule_id, s.play_id, s.studio_id, COUNT(*) AS tickets_sold, "
            "SUM(t.status = 'refunded') AS tickets_refunded, SUM(t.price) AS gross, "
            "SUM(CASE WHEN t.status = 'refunded' THEN t.price ELSE 0 END) AS refunded "
            "FROM tickets t JOIN schedules s ON s.id = t.schedule_id "
            "GROUP BY t.schedule_id, s.play_id, s.studio_id ORDER BY t.schedule_id"))).all()
    return c.Ledger(schedules=[
        c.LedgerLine(schedule_id=r.schedule_id, play_id=r.play_id, studio_id=r.studio_id,
                     tickets_sold=int(r.tickets_sold), tickets_refunded=int(r.tickets_refunded),
                     gross=int(r.gross), refunded=int(r.refunded)) for r in rows])


# -- expiry: the delay queue and the sweep ----------------------------------------------------

class _EndedHolds:
    """Holds this process saw end (paid, cancelled, expired), so that their return from the
    delay queue costs no transaction. A hold that ended never becomes held again, so the
    memory can only be out of date by missing a hold (another process ended it, or this one
    restarted, or it was forgotten to stay small): then the UPDATE runs as before and
    changes nothing. The database still decides every hold."""

    LIMIT = 200_000  # the oldest are forgotten first; each is an int

    def __init__(self) -> None:
        self._ids: OrderedDict[int, None] = OrderedDict()

    def add(self, reservation_id: int) -> None:
        self._ids[reservation_id] = None
        if len(self._ids) > self.LIMIT:
            self._ids.popitem(last=False)

    def __contains__(self, reservation_id: int) -> bool:
        return reservation_id in self._ids


_ended = _EndedHolds()


async def _expire(app: App, reservation_id: int) -> None:
    """A hold came back from the delay queue: release it if it is still unpaid and due.
    Usually it was paid or cancelled meanwhile: by this process (nothing to do) or by another
    (one UPDATE that changes nothing, one round trip with its BEGIN)."""
    if reservation_id in _ended:
        return
    now = utcnow()
    async with app.db.plain_transaction(begin_later=True) as tx:
        ended = await tx.execute(EXPIRE_HOLD, {"id": reservation_id, "now": to_db(now)})
        if ended.rowcount == 1:
            row = (await tx.execute(RESERVATION, {"id": reservation_id})).first()
            await _free_seats(tx, row, row.play_id, "expired", now)
    if ended.rowcount == 1:
        _ended.add(reservation_id)


@handlers.startup
async def expire_holds_when_due(app: App) -> None:
    """Consume the holds the delay queue brings back when due."""
    global _expiry

    async def due(payload: dict[str, Any]) -> None:
        await _expire(app, int(payload["reservation_id"]))

    delay = Delay(app.broker, app.settings.names, "ticket.holds", app.settings.hold_seconds,
                  due)
    _expiry = delay
    await delay.start()


@handlers.startup
async def sweep_overdue_holds(app: App) -> None:
    """Release overdue holds the broker never returned (lost with a broker, or a process that
    died before scheduling them), and forget day-old idempotency keys."""
    interval = app.settings.sweep_interval_seconds
    cleaned = 0.0
    loop = asyncio.get_running_loop()
    while True:
        try:
            while await sweep_once(app) > 0:
                pass
            if loop.time() - cleaned > 600:
                cleaned = loop.time()
                async with app.db.transaction() as tx:
                    await tx.execute(text(
                        "DELETE FROM idempotency_keys WHERE created_at < :before LIMIT 5000"),
                        {"before": to_db(utcnow() - KEY_LIFETIME)})
        except Exception as exc:  # noqa: BLE001 - the database may be away; try next round
            log.warning("sweep failed (%s); will retry", exc)
        await asyncio.sleep(interval)


async def sweep_once(app: App, batch: int = 200) -> int:
    """Release up to ``batch`` holds overdue by more than SWEEP_GRACE_SECONDS: the delay queue
    releases holds when due; the sweep leaves it that moment, so the two rarely race."""
    now = utcnow()
    async with app.db.transaction() as tx:
        # SKIP LOCKED: two processes sweeping at once take different holds.
        due = (await tx.execute(text(
            "SELECT id, schedule_id, user_id, seats FROM reservations "
            "WHERE status = 'held' AND expires_at <= :due ORDER BY expires_at LIMIT :n "
            "FOR UPDATE SKIP LOCKED"),
            {"due": to_db(now - timedelta(seconds=SWEEP_GRACE_SECONDS)), "n": batch})).all()
        if not due:
            return 0
        plays = {r.id: r.play_id for r in (await tx.execute(text(
            "SELECT id, play_id FROM schedules WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)),
            {"ids": sorted({r.schedule_id for r in due})})).all()}
        for row in due:
            await _release(tx, row, plays.get(row.schedule_id, 0), "expired", "expired", now)
    if due:
        log.info("swept %d overdue holds", len(due))
    return len(due)
