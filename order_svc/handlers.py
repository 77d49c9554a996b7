"""order_svc's commands and events, each a short function; the work is done in the module
named for it: ``orders`` (order rows from ticket_svc's events, and reading them),
``attendance`` (check-ins at the door),
``catalogue`` (the copies of shows, plays and studios), ``box_office`` (the figures).

Events build the tables (see ``tables.py`` for why any order of arrival ends the same); the
inbox makes each event apply once. Every event of a reservation first upserts its order row,
which also locks it, so events of one reservation apply one after the other.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from messages import errors
from messages.contracts import door as d
from messages.contracts import order as c
from messages.contracts import play as p
from messages.contracts import studio as st
from messages.contracts import ticket as t
from messages.contracts import user as u
from messages.contracts.base import Page, Role
from messages.db import PlainTx
from messages.service import App, Context, Handlers
from order_svc import attendance, audit, catalogue, orders
from order_svc import box_office as figures
from order_svc.orders import ORDER_COLUMNS, ORDER_SOURCE, to_order
from order_svc.tables import orders as order_rows

handlers = Handlers()
# The driver logs a warning for every row INSERT IGNORE skips (here and in the inbox): noise.
logging.getLogger("asyncmy").setLevel(logging.ERROR)


# -- events: orders ----------------------------------------------------------------------------

@handlers.event(t.TicketHeld, plain=True)
async def on_ticket_held(event: t.TicketHeld, tx: PlainTx, app: App) -> None:
    await orders.held(event, tx, app)
    audit.ticket_held(event, tx)


@handlers.event(t.TicketSold, plain=True)
async def on_ticket_sold(event: t.TicketSold, tx: PlainTx, app: App) -> None:
    await orders.sold(event, tx, app)


@handlers.event(t.TicketReleased, plain=True)
async def on_ticket_released(event: t.TicketReleased, tx: PlainTx, app: App) -> None:
    await orders.released(event, tx, app)


@handlers.event(t.TicketRefunded, plain=True)
async def on_ticket_refunded(event: t.TicketRefunded, tx: PlainTx, app: App) -> None:
    await orders.refunded(event, tx, app)
    audit.ticket_refunded(event, tx)


@handlers.event(d.TicketCheckedIn, plain=True)
async def on_ticket_checked_in(event: d.TicketCheckedIn, tx: PlainTx, app: App) -> None:
    await attendance.checked_in(event, tx, app)


# -- events: the catalogue -------------------------------------------------------------------

@handlers.event(p.ScheduleCreated, plain=True)
async def on_schedule_created(event: p.ScheduleCreated, tx: PlainTx, app: App) -> None:
    await catalogue.schedule_created(event, tx, app)


@handlers.event(p.ScheduleUpdated, plain=True)
async def on_schedule_updated(event: p.ScheduleUpdated, tx: PlainTx, app: App) -> None:
    await catalogue.schedule_updated(event, tx, app)
    audit.schedule_updated(event, tx)


@handlers.event(p.ScheduleCancelled, plain=True)
async def on_schedule_cancelled(event: p.ScheduleCancelled, tx: PlainTx, app: App) -> None:
    await catalogue.schedule_cancelled(event, tx, app)
    audit.schedule_cancelled(event, tx)


@handlers.event(p.PlayCreated, plain=True)
async def on_play_created(event: p.PlayCreated, tx: PlainTx, app: App) -> None:
    await catalogue.play_created(event, tx, app)


@handlers.event(p.PlayUpdated, plain=True)
async def on_play_updated(event: p.PlayUpdated, tx: PlainTx, app: App) -> None:
    await catalogue.play_updated(event, tx, app)


@handlers.event(p.PlayDeleted, plain=True)
async def on_play_deleted(event: p.PlayDeleted, tx: PlainTx, app: App) -> None:
    await catalogue.play_deleted(event, tx, app)


@handlers.event(st.StudioCreated, plain=True)
async def on_studio_created(event: st.StudioCreated, tx: PlainTx, app: App) -> None:
    await catalogue.studio_created(event, tx, app)


@handlers.event(st.StudioUpdated, plain=True)
async def on_studio_updated(event: st.StudioUpdated, tx: PlainTx, app: App) -> None:
    await catalogue.studio_updated(event, tx, app)


# -- events: staff actions on accounts, for the audit log ---------------------------------------

@handlers.event(u.UserUpdated, plain=True)
async def on_user_updated(event: u.UserUpdated, tx: PlainTx, app: App) -> None:
    audit.user_updated(event, tx)


@handlers.event(u.UserDeleted, plain=True)
async def on_user_deleted(event: u.UserDeleted, tx: PlainTx, app: App) -> None:
    audit.user_deleted(event, tx)


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
