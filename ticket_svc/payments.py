"""After the hold: pay (the hold becomes sold tickets), cancel and release (its seats are
available again), refund (a sold ticket's seat is available again), and a cancelled show's
holds released and tickets refunded. Each is decided by a conditional UPDATE on the row's
status (``ticket_svc.domain``'s lifecycle) and is idempotent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from messages import errors
from messages.contracts import play as p
from messages.contracts import ticket as c
from messages.contracts.base import Caller, Role, utcnow
from messages.db import Tx, as_utc, is_deadlock, retry_deadlocks, to_db
from messages.service import App, Context
from ticket_svc import domain, etickets, limits, queries, versions
from ticket_svc.domain import CANCELLED, EXPIRED, PAID, REFUNDED, SOLD
from ticket_svc.etickets import FIRST_CODE_VERSION
from ticket_svc.idempotency import Key, rolled_back

# -- reading a reservation ------------------------------------------------------------------

async def load_reservation(conn, reservation_id: int, caller: Caller):
    row = (await conn.execute(queries.RESERVATION, {"id": reservation_id})).first()
    if row is None:
        raise errors.NotFound("no such reservation")
    caller.require_owner_or(row.user_id, Role.clerk, "reservation")
    return row


async def tickets_of(conn, reservation_id: int) -> list[c.Ticket]:
    return [queries.ticket_of(t) for t in
            (await conn.execute(queries.TICKETS_OF_RESERVATION, {"id": reservation_id})).all()]


async def reservation(ctx: Context, reservation_id: int) -> c.Reservation:
    async with ctx.app.db.read() as conn:
        row = await load_reservation(conn, reservation_id, ctx.caller)
        tickets = await tickets_of(conn, row.id) if row.status == PAID else []
    # Due but not yet released (the sweep runs every few seconds): it is expired already.
    due = row.status == domain.HELD and domain.hold_is_due(as_utc(row.expires_at), utcnow())
    return queries.reservation_of(row, status=EXPIRED if due else None, tickets=tickets)


# -- pay ------------------------------------------------------------------------------------

class _ChangedMeanwhile(Exception):
    """Paid, expired or cancelled between our read and our update: rolled back, read again."""


async def pay(cmd: c.Pay, ctx: Context, idem: Key | None) -> c.Reservation:
    try:
        return await retry_deadlocks(lambda: _pay_once(cmd, ctx, idem), tries=5,
                                     also=(_ChangedMeanwhile,), before_retry=rolled_back(idem))
    except _ChangedMeanwhile:
        pass
    except DBAPIError as exc:
        if not is_deadlock(exc):
            raise
    raise errors.Conflict("the reservation keeps changing; try again", retry_after=1)


async def _pay_once(cmd: c.Pay, ctx: Context, idem: Key | None) -> c.Reservation:
    app = ctx.app
    now = utcnow()
    async with app.db.plain_transaction(begin_later=True) as tx:
        row = await load_reservation(tx, cmd.id, ctx.caller)
        if row.status == PAID:  # paying twice changes nothing
            return queries.reservation_of(row, tickets=await tickets_of(tx, row.id))
        if row.status != domain.HELD:
            raise errors.HoldExpired(f"the hold was {row.status}")
        if not domain.hold_is_due(as_utc(row.expires_at), now):
            domain.check_sales_open(row.schedule_status, as_utc(row.starts_at), now,
                                    app.settings.sales_cutoff_minutes)
            paid, raised = await _sell(tx, row, now, idem, cmd.payment_ref,
                                       app.settings.ticket_signing_key.get_secret_value())
        else:  # due: do not wait for the delay queue or the sweep, release it now
            paid = None
            await release(tx, row, row.play_id, EXPIRED, EXPIRED, now)
    if paid is None:
        raise errors.HoldExpired("the hold expired before it was paid")
    return paid.model_copy(update={"seats_version": raised.value})  # known once committed


async def _sell(tx: Tx, row, now: datetime, idem: Key | None, payment_ref: str | None,
                seed: str) -> tuple[c.Reservation, versions.Raised]:
    """Mark the hold paid, its seats sold and its tickets written, in one round trip: the
    reservation's conditional UPDATE decides, and when it changed nothing (the hold was paid,
    expired or cancelled since our read) the transaction is rolled back, tickets and all.
    The paid reservation, and the show's new seat-map version (known once committed)."""
    seats = queries.seats_of(row)
    paid = tx.later(queries.MARK_PAID, {"id": row.id, "now": to_db(now), "ref": payment_ref})
    sold = tx.later(queries.seats_of_hold(f"status = '{SOLD}'", seats),
                    {"sid": row.schedule_id, "id": row.id})
    # Ticket types are names: bound parameters, NULL for the full price.
    types = {f"t{i}": s.get("type") for i, s in enumerate(seats)}
    values = ", ".join(
        f"({int(row.id)},{int(row.schedule_id)},{int(row.user_id)},{int(s['row'])},"
        f"{int(s['col'])},{int(s['price'])},:t{i},'{SOLD}',:now)" for i, s in enumerate(seats))
    created = (await tx.execute(text(
        "INSERT INTO tickets (reservation_id, schedule_id, user_id, seat_row, seat_col, price, "
        "ticket_type, status, sold_at) VALUES " + values
        + " RETURNING id, seat_row, seat_col, price, ticket_type"),
        {"now": to_db(now), **types})).all()
    if paid.rowcount != 1:
        raise _ChangedMeanwhile
    if sold.rowcount != len(seats):  # cannot happen while holds own their seats
        raise errors.InternalError(f"reservation {row.id} did not own all of its seats")
    raised = await versions.raise_at_commit(tx, row.schedule_id)
    tickets = [c.Ticket(id=t.id, reservation_id=row.id, schedule_id=row.schedule_id,
                        user_id=row.user_id, row=t.seat_row, col=t.seat_col, price=t.price,
                        type=t.ticket_type, status=c.TicketStatus.sold, sold_at=now)
               for t in created]
    raised.emit(c.TicketSold(
        reservation_id=row.id, user_id=row.user_id, schedule_id=row.schedule_id,
        play_id=row.play_id, play_name=row.play_name, studio_id=row.studio_id,
        starts_at=as_utc(row.starts_at),
        tickets=[c.SoldTicket(ticket_id=t.id, row=t.row, col=t.col, price=t.price, type=t.type,
                              code=etickets.sign(seed, etickets.CodeFacts(
                                  t.id, row.schedule_id, t.row, t.col, FIRST_CODE_VERSION)))
                 for t in tickets],
        total=row.total, currency=row.currency, paid_at=now))
    reservation = queries.reservation_of(row, status=PAID, paid_at=now, tickets=tickets)
    if idem is not None:
        idem.record(tx, True, reservation.model_dump(mode="json"), raised.into)
    return reservation, raised


# -- cancel and release -----------------------------------------------------------------------

async def release(tx: Tx, row, play_id: int, reason: str, status: str,
                  now: datetime) -> versions.Raised | None:
    """End one hold (``status`` expired or cancelled) and free its seats: the show's new
    seat-map version (``value`` once committed), or None if it was not held."""
    assert domain.hold_may_become(domain.HELD, status), status
    ended = await tx.execute(queries.END_HOLD, {"id": row.id, "status": status,
                                                "now": to_db(now)})
    if ended.rowcount == 0:
        return None
    return await free_seats(tx, row, play_id, reason, now)


async def free_seats(tx: Tx, row, play_id: int, reason: str,
                     now: datetime) -> versions.Raised:
    """The seats of a hold that just ended are available again; announce it. The show's new
    seat-map version (``value`` once committed)."""
    seats = queries.seats_of(row)
    await tx.execute(queries.seats_of_hold("status = 'available', reservation_id = NULL",
                                           seats), {"sid": row.schedule_id, "id": row.id})
    await limits.give_back(tx, row.schedule_id, row.user_id, len(seats))
    raised = await versions.raise_at_commit(tx, row.schedule_id)
    raised.emit(c.TicketReleased(
        reservation_id=row.id, user_id=row.user_id, schedule_id=row.schedule_id,
        play_id=play_id, seats=[c.PricedSeat(**s) for s in seats], reason=reason,
        released_at=now))
    return raised


async def cancel(cmd: c.CancelReservation, ctx: Context) -> dict[str, int | None]:
    """Cancel a hold (a deadlock victim is run again: it was rolled back whole). The answer
    (for the gateway, which says 204) names the show and its new seat-map version."""
    return await retry_deadlocks(lambda: _cancel_once(cmd, ctx))


async def _cancel_once(cmd: c.CancelReservation, ctx: Context) -> dict[str, int | None]:
    async with ctx.app.db.transaction() as tx:
        row = await load_reservation(tx, cmd.id, ctx.caller)
        if row.status == PAID:
            raise errors.Conflict("the reservation is paid; refund its tickets instead")
        released = None
        if row.status == domain.HELD:
            released = await release(tx, row, row.play_id, CANCELLED, CANCELLED, utcnow())
            if released is None:  # paid or expired meanwhile
                again = (await tx.execute(queries.RESERVATION, {"id": cmd.id})).first()
                if again is not None and again.status == PAID:
                    raise errors.Conflict("the reservation is paid; refund its tickets instead")
    return {"schedule_id": row.schedule_id,
            "seats_version": released.value if released is not None else None}


# -- refunds ------------------------------------------------------------------------------------

async def refund(cmd: c.Refund, ctx: Context) -> c.Ticket:
    """Refund a sold ticket (a deadlock victim is run again: it was rolled back whole)."""
    return await retry_deadlocks(lambda: _refund_once(cmd, ctx))


async def _refund_once(cmd: c.Refund, ctx: Context) -> c.Ticket:
    app = ctx.app
    async with app.db.plain_transaction(begin_later=True) as tx:
        row = (await tx.execute(queries.TICKET, {"id": cmd.id})).first()
        if row is None:
            raise errors.NotFound("no such ticket")
        ctx.caller.require_owner_or(row.user_id, Role.clerk, "ticket")
        if row.status == REFUNDED:  # refunding twice changes nothing
            return queries.ticket_of(row)
        _check_not_checked_in(row)
        now = utcnow()
        domain.check_refund_open(as_utc(row.starts_at), now)
        done = await tx.execute(queries.MARK_REFUNDED, {"id": row.id, "now": to_db(now)})
        if done.rowcount == 0:  # refunded, or checked in, meanwhile by a concurrent request
            again = (await tx.execute(queries.TICKET_LOCKED, {"id": cmd.id})).first()
            _check_not_checked_in(again)
            return queries.ticket_of(again)
        tx.later(queries.FREE_SOLD_SEAT, {
            "schedule_id": row.schedule_id, "row": row.seat_row, "col": row.seat_col,
            "reservation_id": row.reservation_id})
        await limits.give_back(tx, row.schedule_id, row.user_id, 1)
        raised = await versions.raise_at_commit(tx, row.schedule_id)
        refunded = queries.ticket_refunded(row, row.play_id, row.studio_id,
                                           app.settings.currency, "requested", now)
        if ctx.caller.user_id != row.user_id:  # staff refunding a buyer's ticket: audited
            refunded.actor = ctx.caller.actor()
        raised.emit(refunded)
    ticket = queries.ticket_of(row)
    return ticket.model_copy(update={"status": c.TicketStatus.refunded, "refunded_at": now,
                                     "seats_version": raised.value})


def _check_not_checked_in(row) -> None:
    if row.checked_in_at is not None:
        raise errors.Conflict("the ticket was checked in at the door; it cannot be refunded")


async def cancel_show(tx: Tx, app: App, s: p.Schedule) -> None:
    """A cancelled show: release every hold of it and refund every ticket sold for it."""
    await tx.execute(text("UPDATE schedules SET status = 'cancelled' WHERE id = :id"),
                     {"id": s.id})
    now = utcnow()
    held = (await tx.execute(queries.HOLDS_OF_SHOW, {"id": s.id})).all()
    for row in held:
        await release(tx, row, s.play_id, "show_cancelled", CANCELLED, now)
    sold = (await tx.execute(text(
        "SELECT id, reservation_id, schedule_id, user_id, seat_row, seat_col, price, "
        f"ticket_type FROM tickets WHERE schedule_id = :id AND status = '{SOLD}' FOR UPDATE"),
        {"id": s.id})).all()
    if not sold:
        return
    await tx.execute(text(
        f"UPDATE tickets SET status = '{REFUNDED}', refunded_at = :now "
        f"WHERE schedule_id = :id AND status = '{SOLD}'"), {"id": s.id, "now": to_db(now)})
    await tx.execute(text(
        "UPDATE seats SET status = 'available', reservation_id = NULL "
        f"WHERE schedule_id = :id AND status = '{SOLD}'"), {"id": s.id})
    raised = await versions.raise_at_commit(tx, s.id, len(sold))  # one version per event
    for k, t in enumerate(sold, start=1):
        raised.emit(queries.ticket_refunded(t, s.play_id, s.studio_id, app.settings.currency,
                                            "show_cancelled", now), k)
