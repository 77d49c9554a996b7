"""ticket_svc's commands and events, each a short function; the work is done in the module
named for its mechanism:

- ``domain``: the rules (sales and refund windows, seat order, the hold's lifecycle);
- ``queries``: SQL text and rows → contract models;
- ``inventory``: the local copy of each show and its seats, and play_svc's edit checks;
- ``holds``: the all-or-nothing claim of a hold's seats, and its retries;
- ``best``: best-available holds (``quantity``/``together``): the ranking rule, the retries;
- ``contention``: same-seat turns and shared early reads inside one process;
- ``payments``: pay, cancel, release, refund, a cancelled show;
- ``expiry``: the delay queue, the memory of ended holds, expire, the sweep;
- ``idempotency``: Idempotency-Keys (take, record, forget, purge);
- ``versions``: each show's seat-map version, raised with every change of its seats;
- ``etickets``: the signed check-in code of a ticket (Ed25519);
- ``checkins``: admitting a ticket once at the door, online and offline;
- ``limits``: tickets per account (a show's cap);
- ``waitlist``: the waiting list of sold-out shows, and offers of seats that come back;
- ``state``: what one process keeps between commands (``app.state``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from messages import errors
from messages.contracts import door as d
from messages.contracts import play as p
from messages.contracts import ticket as c
from messages.contracts.base import Role
from messages.db import Tx
from messages.service import App, Context, Handlers
from ticket_svc import (
    best,
    checkins,
    domain,
    expiry,
    holds,
    idempotency,
    inventory,
    payments,
    reminders,
    waitlist,
)
from ticket_svc.queries import ticket_of
from ticket_svc.state import ProcessState

log = logging.getLogger("ttms.ticket")
# INSERT IGNORE is how inventory and idempotency keys stay idempotent; asyncmy would log each
# ignored duplicate as a warning.
logging.getLogger("asyncmy").setLevel(logging.ERROR)
handlers = Handlers(state=ProcessState)


# -- the shows, from play_svc's events -----------------------------------------------------------

@handlers.event(p.ScheduleCreated)
async def on_schedule_created(event: p.ScheduleCreated, tx: Tx, app: App) -> None:
    await inventory.store(tx, event.schedule, event.rows, event.cols, event.seats,
                          no_single_gaps=event.no_single_gaps)


@handlers.event(p.ScheduleUpdated)
async def on_schedule_updated(event: p.ScheduleUpdated, tx: Tx, app: App) -> None:
    # Only a scheduled show is edited; a cancellation comes as schedule.cancelled.
    await inventory.apply_edit(tx, event.schedule, event.schedule_version)


@handlers.event(p.PlayUpdated)
async def on_play_updated(event: p.PlayUpdated, tx: Tx, app: App) -> None:
    await inventory.rename_play(tx, event.play)


@handlers.event(p.ScheduleCancelled)
async def on_schedule_cancelled(event: p.ScheduleCancelled, tx: Tx, app: App) -> None:
    await payments.cancel_show(tx, app, event.schedule)


# -- the seat map ----------------------------------------------------------------------------

@handlers.command(c.GetSeats)
async def seats_for_sale(cmd: c.GetSeats, ctx: Context) -> dict[str, Any]:
    return await inventory.seat_map(ctx.app, cmd.id)


@handlers.command(c.SetSeatRules)
async def set_seat_rules(cmd: c.SetSeatRules, ctx: Context) -> c.SeatRules:
    if not ctx.caller.at_least(Role.manager):
        raise errors.Forbidden("only managers set a show's seat rules")
    return await inventory.set_rules(ctx.app, cmd.id, cmd.no_single_gaps)


@handlers.command(c.GetSeatSnapshot)
async def seat_snapshot(cmd: c.GetSeatSnapshot, ctx: Context) -> c.SeatSnapshot:
    return await inventory.snapshot(ctx.app, cmd.id)


# -- hold, pay, cancel -------------------------------------------------------------------------

@handlers.command(c.Hold)
async def hold(cmd: c.Hold, ctx: Context) -> c.Reservation:
    caller = ctx.caller
    buyer = me = caller.require_signed_in()
    if cmd.customer_id is not None:
        if not caller.at_least(Role.clerk):
            raise errors.Forbidden("only box-office staff may sell on a customer's account")
        buyer = cmd.customer_id
    if cmd.seats is None:  # best available
        def run(idem):
            return best.hold_best(ctx.app, caller, cmd.schedule_id, buyer, cmd.customer_id,
                                  cmd.quantity, cmd.together, idem, cmd.type)
    else:
        keys = domain.seat_keys(cmd.seats)
        types = {(s.row, s.col): s.type for s in cmd.seats if s.type is not None}

        def run(idem):
            return holds.hold(ctx.app, caller, cmd.schedule_id, buyer, cmd.customer_id, keys,
                              idem, types)

        def refuse_early():  # a box-office sale checks its customer first
            return holds.refuse_early(ctx.app, cmd.schedule_id, keys)
    try:
        return await idempotency.once_per_key(
            ctx, "hold", me, cmd, run,
            refuse_early if cmd.seats is not None and cmd.customer_id is None else None)
    except DBAPIError as exc:  # answered as 503; say why here
        log.warning("hold on show %s failed in the database: %s", cmd.schedule_id, exc.orig)
        raise


@handlers.command(c.GetReservation)
async def get_reservation(cmd: c.GetReservation, ctx: Context) -> c.Reservation:
    return await payments.reservation(ctx, cmd.id)


@handlers.command(c.Pay)
async def pay(cmd: c.Pay, ctx: Context) -> c.Reservation:
    me = ctx.caller.require_signed_in()
    try:
        paid = await idempotency.once_per_key(ctx, "pay", me, cmd,
                                              lambda idem: payments.pay(cmd, ctx, idem))
    except DBAPIError as exc:
        log.warning("paying reservation %s failed in the database: %s", cmd.id, exc.orig)
        raise
    # Answered "paid": committed, and for good. (A key recorded before keys had fingerprints
    # may still answer for another reservation, which says nothing of this one.)
    if (paid["id"] if isinstance(paid, dict) else paid.id) == cmd.id:
        ctx.app.state.ended.add(cmd.id)
    return paid


@handlers.command(c.CancelReservation)
async def cancel_reservation(cmd: c.CancelReservation, ctx: Context) -> dict[str, Any]:
    changed = await payments.cancel(cmd, ctx)
    ctx.app.state.ended.add(cmd.id)  # cancelled now, or had already ended: not held, for good
    return changed  # the show and its seat-map version, for the gateway's read-your-writes


# -- tickets and refunds -----------------------------------------------------------------------

@handlers.command(c.ListTickets)
async def list_tickets(cmd: c.ListTickets, ctx: Context) -> dict[str, Any]:
    caller = ctx.caller
    me = caller.require_signed_in()
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
            f"ticket_type, status, sold_at, refunded_at FROM tickets WHERE {clause} "
            "ORDER BY id DESC LIMIT :limit OFFSET :offset"), params)).all()
    return {"items": [ticket_of(r).model_dump(mode="json") for r in rows], "total": total,
            "page": cmd.page, "page_size": cmd.page_size}


@handlers.command(c.Refund)
async def refund(cmd: c.Refund, ctx: Context) -> c.Ticket:
    return await payments.refund(cmd, ctx)


# -- the door: e-tickets and check-in -------------------------------------------------------

@handlers.command(d.GetTicket)
async def get_ticket(cmd: d.GetTicket, ctx: Context) -> d.ETicket:
    return await checkins.e_ticket(ctx.app, ctx.caller, cmd.id)


@handlers.command(d.Checkin)
async def checkin(cmd: d.Checkin, ctx: Context) -> d.CheckinResult:
    return await checkins.checkin(ctx.app, ctx.caller, cmd)


@handlers.command(d.CheckinBatch)
async def checkin_batch(cmd: d.CheckinBatch, ctx: Context) -> d.CheckinBatchResult:
    return await checkins.batch(ctx.app, ctx.caller, cmd)


@handlers.command(d.ReissueCode)
async def reissue_code(cmd: d.ReissueCode, ctx: Context) -> d.ETicket:
    return await checkins.reissue(ctx.app, ctx.caller, cmd.id)


@handlers.command(d.GetCheckinList)
async def checkin_list(cmd: d.GetCheckinList, ctx: Context) -> d.CheckinList:
    return await checkins.checkin_list(ctx.app, ctx.caller, cmd.id)


# -- the waiting list ----------------------------------------------------------------------------

@handlers.command(c.JoinWaitlist)
async def join_waitlist(cmd: c.JoinWaitlist, ctx: Context) -> c.WaitlistEntry:
    return await waitlist.join(cmd, ctx)


@handlers.command(c.ListWaitlist)
async def list_waitlist(cmd: c.ListWaitlist, ctx: Context) -> dict[str, Any]:
    return await waitlist.entries(cmd, ctx)


@handlers.command(c.LeaveWaitlist)
async def leave_waitlist(cmd: c.LeaveWaitlist, ctx: Context) -> c.WaitlistEntry:
    return await waitlist.leave(cmd, ctx)


# Seats that come back go to the line first (ticket_svc's own events, after their commit;
# those delivered together in one plain transaction).
@handlers.event(c.TicketReleased, plain=True)
async def on_ticket_released(event: c.TicketReleased, tx: Tx, app: App) -> None:
    if event.reason != "show_cancelled":
        await waitlist.seats_returned(tx, app, event.schedule_id, event.reservation_id)


@handlers.event(c.TicketRefunded, plain=True)
async def on_ticket_refunded(event: c.TicketRefunded, tx: Tx, app: App) -> None:
    if event.reason != "show_cancelled":
        await waitlist.seats_returned(tx, app, event.schedule_id)


# -- for other services ----------------------------------------------------------------------

@handlers.command(c.GetSalesActivity)
async def sales_activity(cmd: c.GetSalesActivity, ctx: Context) -> c.SalesActivity:
    return await inventory.sales_activity(ctx.app, cmd.schedule_ids)


@handlers.command(c.BeginShowEdit)
async def begin_show_edit(cmd: c.BeginShowEdit, ctx: Context) -> c.SalesActivityLine:
    return await inventory.begin_edit(ctx.app, cmd.schedule_id, cmd.version)


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


# -- for the process's life: holds that come back due, the sweep, stalled waiting lists,
# reminders ---------------------------------------------------------------------------------

@handlers.startup
async def expire_holds_when_due(app: App) -> None:
    await expiry.consume_due_holds(app)


@handlers.startup
async def sweep_overdue_holds(app: App) -> None:
    await expiry.sweep_forever(app)


@handlers.startup
async def serve_stalled_waiting_lists(app: App) -> None:
    await waitlist.serve_stalled_forever(app)


@handlers.startup
async def remind_buyers_before_their_show(app: App) -> None:
    await reminders.remind_forever(app)
