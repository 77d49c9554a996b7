"""order_svc's events, as two tables (what each changes; which leave an audit entry), and its
commands, each a short function; the work is done in the module named for it: ``orders``
(order rows from ticket_svc's events, and reading them), ``attendance`` (check-ins at the
door), ``catalogue`` (the copies of shows, plays and studios), ``audit`` (the audit log),
``box_office`` (the figures).

Events build the tables (see ``tables.py`` for why any order of arrival ends the same); the
inbox makes each event apply once. Every event of a reservation first upserts its order row,
which also locks it, so events of one reservation apply one after the other.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select

from messages import errors
from messages.contracts import door as d
from messages.contracts import order as c
from messages.contracts import play as p
from messages.contracts import studio as st
from messages.contracts import ticket as t
from messages.contracts import user as u
from messages.contracts.base import Event, Page, Role
from messages.db import PlainTx
from messages.service import App, Context, Handlers
from order_svc import attendance, audit, catalogue, orders
from order_svc import box_office as figures
from order_svc.orders import ORDER_COLUMNS, ORDER_SOURCE, to_order
from order_svc.tables import orders as order_rows

handlers = Handlers()
# The driver logs a warning for every row INSERT IGNORE skips (here and in the inbox): noise.
logging.getLogger("asyncmy").setLevel(logging.ERROR)


# -- events -------------------------------------------------------------------------------------

# What each event changes: ``orders`` the order and sale rows, ``attendance`` the check-ins,
# ``catalogue`` the copies of shows, plays and studios.
APPLIED = {
    t.TicketHeld: orders.held,
    t.TicketSold: orders.sold,
    t.TicketReleased: orders.released,
    t.TicketRefunded: orders.refunded,
    d.TicketCheckedIn: attendance.checked_in,
    p.ScheduleCreated: catalogue.schedule_created,
    p.ScheduleUpdated: catalogue.schedule_updated,
    p.ScheduleCancelled: catalogue.schedule_cancelled,
    p.PlayCreated: catalogue.play_created,
    p.PlayUpdated: catalogue.play_updated,
    p.PlayDeleted: catalogue.play_deleted,
    st.StudioCreated: catalogue.studio_created,
    st.StudioUpdated: catalogue.studio_updated,
}
# The events that may tell a staff action, and the audit log's entry for it (``audit``); after
# what the event changes, in the same transaction.
AUDITED = {
    t.TicketHeld: audit.ticket_held,
    t.TicketRefunded: audit.ticket_refunded,
    d.TicketReissued: audit.ticket_reissued,
    p.ScheduleUpdated: audit.schedule_updated,
    p.PlayUpdated: audit.play_updated,
    p.ScheduleCancelled: audit.schedule_cancelled,
    u.UserUpdated: audit.user_updated,
    u.UserDeleted: audit.user_deleted,
}


def _on(kind: type[Event]) -> Callable[[Event, PlainTx, App], Awaitable[None]]:
    """The handler of events of ``kind``: what it changes, then its audit entry."""
    apply, record = APPLIED.get(kind), AUDITED.get(kind)

    async def on_event(event: Event, tx: PlainTx, app: App) -> None:
        if apply is not None:
            await apply(event, tx, app)
        if record is not None:
            record(event, tx)
    return on_event


for _event in {**APPLIED, **AUDITED}:
    handlers.event(_event, plain=True)(_on(_event))


# -- commands: orders ------------------------------------------------------------------------

@handlers.command(c.ListOrders)
async def list_orders(cmd: c.ListOrders, ctx: Context) -> Page[c.Order]:
    caller = ctx.caller
    caller.require_signed_in()
    user_id = cmd.user_id
    if not caller.at_least(Role.clerk):
        if user_id is not None and user_id != caller.user_id:
            raise errors.Forbidden("only clerks and above may see other users' orders")
        user_id = caller.user_id
    where = []
    if user_id is not None:
        where.append(order_rows.c.user_id == user_id)
    if cmd.status is not None:
        where.append(order_rows.c.status == cmd.status.value)
    return await ctx.app.db.page(select(*ORDER_COLUMNS).select_from(ORDER_SOURCE), order_rows,
                                 where, [order_rows.c.id.desc()], cmd, to_order)


@handlers.command(c.GetOrder)
async def get_order(cmd: c.GetOrder, ctx: Context) -> c.Order:
    caller = ctx.caller
    caller.require_signed_in()
    async with ctx.app.db.read() as conn:
        row = (await conn.execute(select(*ORDER_COLUMNS).select_from(ORDER_SOURCE)
                                  .where(order_rows.c.id == cmd.id))).first()
    if row is None:
        raise errors.NotFound("no such order")
    if not caller.owns_or_at_least(row.user_id, Role.clerk):
        raise errors.Forbidden("this order is not yours")
    return to_order(row)


# -- commands: box office --------------------------------------------------------------------

@handlers.command(c.GetPlayBoxOffice)
async def play_box_office(cmd: c.GetPlayBoxOffice, ctx: Context) -> c.PlayBoxOffice:
    ctx.caller.require(Role.manager)
    return await figures.play(ctx.app, cmd)


@handlers.command(c.GetBoxOffice)
async def box_office(cmd: c.GetBoxOffice, ctx: Context) -> c.BoxOfficeReport:
    ctx.caller.require(Role.manager)
    return await figures.report(ctx.app, cmd)


# -- commands: the audit log -------------------------------------------------------------------

@handlers.command(c.ListAudit)
async def list_audit(cmd: c.ListAudit, ctx: Context) -> Page[c.AuditEntry]:
    ctx.caller.require(Role.admin)
    return await audit.entries(ctx.app, cmd)
