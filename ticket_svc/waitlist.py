"""The waiting list of a sold-out show (issue 20.4), strictly first come, first served.

A customer joins with a quantity while the show has fewer seats available than that. When
seats come back (a hold expired or cancelled, a ticket refunded: ticket_svc's own
``ticket.released`` and ``ticket.refunded`` events) the first in line is offered them: that
many available seats are held for them in one transaction, like any hold (a reservation, the
seats' conditional UPDATE, ``ticket.held``), with ``waitlist.offered`` for the customer. The
offer lasts a hold's length (``TTMS_HOLD_SECONDS``); one that ends unpaid is ``lapsed`` and its
seats, coming back, go to the next in line. An offer counts toward the show's cap on tickets
per account like a hold (``limits``): joining is refused when the account has no room for
what it asks, and one who bought up to the cap since is ``passed`` over when seats come back.
The head of the line is locked while it is offered seats, so two offers of one show are made
one after the other, whatever the number of ticket_svc processes; while the first in line
wants more seats than there are, nobody behind them is served. An offer is made after the
commit of what brought the seats back; if the process dies in between, every ticket_svc process
serves such lines each sweep interval (``serve_stalled_forever``).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from messages import errors
from messages.contracts import ticket as c
from messages.contracts.base import Role, utcnow
from messages.db import Tx, as_utc, is_deadlock, to_db
from messages.service import App, Context
from ticket_svc import domain, expiry, holds, limits, queries, versions

log = logging.getLogger("ttms.ticket.waitlist")

WAITING, OFFERED, LAPSED, PASSED, LEFT = "waiting", "offered", "lapsed", "passed", "left"
# What ``_offer_once`` answers when the first in line could take no seats (the cap): the next
# one is served.
_PASSED_OVER = -1
_COLUMNS = ("id, schedule_id, user_id, quantity, status, reservation_id, joined_at, "
            "offered_at")


class _Raced(Exception):
    """A seat picked for the offer was taken meanwhile: rolled back, tried again."""


async def join(cmd: c.JoinWaitlist, ctx: Context) -> c.WaitlistEntry:
    me = ctx.caller.require_signed_in()
    app = ctx.app
    if cmd.customer_id is not None:  # the box office puts a customer in line
        if not ctx.caller.at_least(Role.clerk):
            raise errors.Forbidden("only box-office staff may put another account in line")
        await holds.check_customer(app, ctx.caller, cmd.customer_id)
        me = cmd.customer_id
    async with app.db.transaction() as tx:
        show = (await tx.execute(text(
            "SELECT status, starts_at, max_tickets_per_customer FROM schedules "
            "WHERE id = :id FOR UPDATE"),
            {"id": cmd.id})).first()
        if show is None:
            raise errors.NotFound("no such show (or not on sale yet)")
        domain.check_sales_open(show.status, as_utc(show.starts_at), utcnow(),
                                app.settings.sales_cutoff_minutes)
        available = (await tx.execute(text(
            "SELECT COUNT(*) FROM seats WHERE schedule_id = :id AND status = 'available'"),
            {"id": cmd.id})).scalar()
        ahead = (await tx.execute(text(
            f"SELECT COUNT(*) FROM waitlist WHERE schedule_id = :id AND status = '{WAITING}'"),
            {"id": cmd.id})).scalar()
        if available >= cmd.quantity and not ahead:
            raise errors.Conflict(f"{available} seats are available: hold them instead")
        mine = (await tx.execute(text(
            f"SELECT id FROM waitlist WHERE schedule_id = :id AND user_id = :me "
            f"AND status = '{WAITING}'"), {"id": cmd.id, "me": me})).first()
        if mine is not None:
            raise errors.Conflict("this account is already on this show's waiting list")
        if show.max_tickets_per_customer is not None:
            await limits.check_room(tx, cmd.id, me, cmd.quantity, show.max_tickets_per_customer)
        now = utcnow()
        result = await tx.execute(text(
            "INSERT INTO waitlist (schedule_id, user_id, quantity, status, joined_at) "
            f"VALUES (:id, :me, :n, '{WAITING}', :now)"),
            {"id": cmd.id, "me": me, "n": cmd.quantity, "now": to_db(now)})
        entry_id = result.lastrowid
    await offer(app, cmd.id)  # seats may have come back since the count
    return (await _entries(app, "w.id = :id", {"id": entry_id}))[0]


async def entries(cmd: c.ListWaitlist, ctx: Context) -> dict[str, Any]:
    """The caller's entries, or (a clerk's) those of the account ``user_id``."""
    me = ctx.caller.require_signed_in()
    if cmd.user_id is not None:
        ctx.caller.require_owner_or(cmd.user_id, Role.clerk, "waiting list")
        me = cmd.user_id
    async with ctx.app.db.read() as conn:
        total = (await conn.execute(text("SELECT COUNT(*) FROM waitlist WHERE user_id = :me"),
                                    {"me": me})).scalar()
    items = await _entries(ctx.app, "w.user_id = :me ORDER BY w.id DESC LIMIT :limit "
                           "OFFSET :offset", {"me": me, "limit": cmd.page_size,
                                              "offset": cmd.offset})
    return {"items": [i.model_dump(mode="json") for i in items], "total": total,
            "page": cmd.page, "page_size": cmd.page_size}


async def _entries(app: App, where: str, params: dict[str, Any]) -> list[c.WaitlistEntry]:
    async with app.db.read() as conn:
        rows = (await conn.execute(text(
            f"SELECT w.id, w.schedule_id, w.user_id, w.quantity, w.status, w.reservation_id, "
            f"w.joined_at, w.offered_at, (SELECT COUNT(*) FROM waitlist a WHERE "
            f"a.schedule_id = w.schedule_id AND a.status = '{WAITING}' AND a.id <= w.id) "
            f"AS position FROM waitlist w WHERE {where}"), params)).all()
    return [c.WaitlistEntry(
        id=r.id, schedule_id=r.schedule_id, user_id=r.user_id, quantity=r.quantity,
        status=r.status, position=r.position if r.status == WAITING else None,
        reservation_id=r.reservation_id, joined_at=as_utc(r.joined_at),
        offered_at=as_utc(r.offered_at)) for r in rows]


async def leave(cmd: c.LeaveWaitlist, ctx: Context) -> c.WaitlistEntry:
    """Take a waiting entry out of the line (its account or a clerk). The row lock orders it
    with an offer being made to it: an entry offered seats first is 409 (its hold is cancelled
    like any other), one that left first is never offered any."""
    ctx.caller.require_signed_in()
    async with ctx.app.db.transaction() as tx:
        row = (await tx.execute(text(
            "SELECT user_id, status FROM waitlist WHERE id = :id FOR UPDATE"),
            {"id": cmd.id})).first()
        if row is None:
            raise errors.NotFound("no such waiting-list entry")
        ctx.caller.require_owner_or(row.user_id, Role.clerk, "waiting-list entry")
        if row.status == WAITING:
            await tx.execute(text(f"UPDATE waitlist SET status = '{LEFT}' WHERE id = :id"),
                             {"id": cmd.id})
        elif row.status != LEFT:
            raise errors.Conflict(
                "seats were offered already: cancel that hold instead" if row.status == OFFERED
                else f"this entry is {row.status}, no longer in line")
    return (await _entries(ctx.app, "w.id = :id", {"id": cmd.id}))[0]


# -- seats came back ------------------------------------------------------------------------

async def seats_returned(tx: Tx, app: App, schedule_id: int,
                         reservation_id: int | None = None) -> None:
    """A hold ended unpaid (``reservation_id``: if it was an offer, it lapses, in the event's
    own transaction) or a ticket was refunded: serve the line, in the background, once that
    transaction is done (its connection is not held while the offers take theirs)."""
    if reservation_id is not None:
        await tx.execute(text(
            f"UPDATE waitlist SET status = '{LAPSED}' WHERE reservation_id = :rid "
            f"AND status = '{OFFERED}'"), {"rid": reservation_id})
    app.state.background.start(offer(app, schedule_id))


async def offer(app: App, schedule_id: int) -> None:
    """Offer the seats available now to the line, in order, while the first in line can be
    served. Most shows have no line: one plain read says so, without a transaction."""
    try:
        if not await app.db.fetch(
                f"SELECT 1 FROM waitlist WHERE schedule_id = %s AND status = '{WAITING}' "
                "LIMIT 1", (schedule_id,)):
            return
    except Exception as exc:  # noqa: BLE001 - the database away: the next return retries
        log.warning("reading the line of show %s failed: %s", schedule_id, exc)
        return
    for _ in range(50):  # each turn serves one customer
        for _attempt in range(4):
            try:
                reservation_id = await _offer_once(app, schedule_id)
                break
            except _Raced:
                continue
            except DBAPIError as exc:
                if is_deadlock(exc):  # a deadlock victim, or lost Galera's certification
                    continue
                log.warning("offering seats of show %s failed: %s", schedule_id, exc.orig)
                return
            except errors.ServiceError as exc:  # the database away: the next return retries
                log.warning("offering seats of show %s failed: %s", schedule_id, exc)
                return
        else:
            return
        if reservation_id == _PASSED_OVER:
            continue
        if reservation_id is None:
            return
        expiry.enqueue(app, reservation_id)


# Shows on sale whose first in line could be served now: seats came back but no offer was
# made (ticket_svc died between the release's commit and the offer it starts afterwards).
_STALLED = text(
    f"SELECT w.schedule_id FROM waitlist w JOIN schedules sc ON sc.id = w.schedule_id "
    f"WHERE w.status = '{WAITING}' AND sc.status = 'scheduled' AND sc.starts_at > :closes "
    f"AND w.id = (SELECT MIN(h.id) FROM waitlist h WHERE h.schedule_id = w.schedule_id "
    f"AND h.status = '{WAITING}') AND w.quantity <= (SELECT COUNT(*) FROM seats s "
    f"WHERE s.schedule_id = w.schedule_id AND s.status = 'available') LIMIT 50")


async def serve_stalled_forever(app: App) -> None:
    """Every sweep interval, serve the lines that seats came back for without an offer: an
    offer is lost with the process that was to make it, and would otherwise wait for the next
    seat to come back or the next to join."""
    settings = app.settings
    while True:
        await asyncio.sleep(settings.sweep_interval_seconds)
        try:
            closes = utcnow() + timedelta(minutes=settings.sales_cutoff_minutes)
            async with app.db.read() as conn:
                stalled = (await conn.execute(_STALLED, {"closes": to_db(closes)})).scalars()
                shows = list(stalled)
        except Exception as exc:  # noqa: BLE001 - the database may be away; try next round
            log.warning("reading the stalled waiting lists failed (%s); will retry", exc)
            continue
        for schedule_id in shows:
            log.info("seats of show %s came back with no offer made: serving its line",
                     schedule_id)
            try:
                await offer(app, schedule_id)
            except Exception as exc:  # noqa: BLE001 - this round only; the next tries again
                log.warning("serving the line of show %s failed: %s", schedule_id, exc)


async def _offer_once(app: App, schedule_id: int) -> int | None:
    settings = app.settings
    now = utcnow()
    async with app.db.transaction() as tx:
        head = (await tx.execute(text(
            f"SELECT id, user_id, quantity FROM waitlist WHERE schedule_id = :id "
            f"AND status = '{WAITING}' ORDER BY id LIMIT 1 FOR UPDATE"),
            {"id": schedule_id})).first()
        if head is None:
            return None
        show = (await tx.execute(text(
            "SELECT id, play_id, play_name, studio_id, starts_at, price, prices, status, "
            "max_tickets_per_customer FROM schedules WHERE id = :id LOCK IN SHARE MODE"),
            {"id": schedule_id})).first()
        try:
            domain.check_sales_open(show.status, as_utc(show.starts_at), now,
                                    settings.sales_cutoff_minutes)
        except errors.SalesClosed:
            return None
        free = (await tx.execute(text(
            "SELECT seat_row, seat_col, zone FROM seats WHERE schedule_id = :id AND "
            "status = 'available' ORDER BY seat_row, seat_col LIMIT :n"),
            {"id": schedule_id, "n": head.quantity})).all()
        if len(free) < head.quantity:
            return None  # first come, first served: nobody behind them goes first
        cap = show.max_tickets_per_customer
        if cap is not None and not await limits.count_in_offer(
                tx, schedule_id, head.user_id, head.quantity, cap):
            await tx.execute(text(f"UPDATE waitlist SET status = '{PASSED}' WHERE id = :id"),
                             {"id": head.id})
            return _PASSED_OVER
        prices = domain.zone_prices(show.prices)
        seats = [{"row": s.seat_row, "col": s.seat_col,
                  "price": domain.seat_price(s.zone, prices, show.price)} for s in free]
        keys = [(s["row"], s["col"]) for s in seats]
        total = sum(s["price"] for s in seats)
        expires_at = domain.hold_expires_at(now, settings.hold_seconds)
        created = await tx.execute(queries.INSERT_RESERVATION, {
            "schedule_id": schedule_id, "user_id": head.user_id,
            "seats": orjson.dumps(seats).decode(), "total": total,
            "currency": settings.currency, "expires_at": to_db(expires_at),
            "created_at": to_db(now)})
        reservation_id = created.lastrowid
        claimed = await tx.execute(text(
            f"UPDATE seats SET status = '{domain.HELD}', reservation_id = :rid "
            "WHERE schedule_id = :sid AND " + queries.seats_sql(keys)
            + " AND status = 'available'"), {"rid": reservation_id, "sid": schedule_id})
        if claimed.rowcount != len(keys):
            raise _Raced
        await tx.execute(text(
            f"UPDATE waitlist SET status = '{OFFERED}', reservation_id = :rid, "
            "offered_at = :now WHERE id = :id"),
            {"rid": reservation_id, "now": to_db(now), "id": head.id})
        # The show's seat-map version, raised last like every change of its seats: the
        # gateway applies the offer to its seat maps instead of taking a fresh snapshot.
        raised = await versions.raise_at_commit(tx, schedule_id)
        priced = [c.PricedSeat(**s) for s in seats]
        raised.emit(c.TicketHeld(
            reservation_id=reservation_id, user_id=head.user_id, schedule_id=schedule_id,
            play_id=show.play_id, play_name=show.play_name, studio_id=show.studio_id,
            starts_at=as_utc(show.starts_at), seats=priced, total=total,
            currency=settings.currency, expires_at=expires_at, created_at=now))
        tx.emit(c.WaitlistOffered(
            entry_id=head.id, user_id=head.user_id, schedule_id=schedule_id,
            reservation_id=reservation_id, seats=priced, expires_at=expires_at))
    return reservation_id
