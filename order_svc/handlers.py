"""order_svc's command and event handlers: one function per command or event.

Events build the tables (see ``tables.py`` for why any order of arrival ends the same); the
inbox makes each event apply once. Every event of a reservation first upserts its order row,
which also locks it, so events of one reservation apply one after the other.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.dialects.mysql import insert

from messages import errors
from messages.contracts import order as c
from messages.contracts import play as p
from messages.contracts import studio as st
from messages.contracts import ticket as t
from messages.contracts.base import Caller, Page, Role
from messages.db import Tx, as_utc, to_db
from messages.service import App, Context, Handlers
from order_svc import domain
from order_svc.tables import orders, plays, sales, shows, studios

handlers = Handlers()
# The driver logs a warning for every row INSERT IGNORE skips (here and in the inbox): noise.
logging.getLogger("asyncmy").setLevel(logging.ERROR)


# -- events: sales ---------------------------------------------------------------------------

def _seats(seats) -> list[dict[str, int]]:
    return [{"row": s.row, "col": s.col, "price": s.price} for s in seats]


async def _upsert_order(tx: Tx, values: dict[str, Any], on_duplicate: dict[str, Any]) -> None:
    values = {"refunded_count": 0, "refunded_total": 0, "held": False,
              "status": c.OrderStatus.held.value, **values}
    statement = insert(orders).values(**values)
    on_duplicate = {k: (v(statement.inserted) if callable(v) else v)
                    for k, v in on_duplicate.items()}
    await tx.execute(statement.on_duplicate_key_update(**on_duplicate))


def _fill(column: str):
    """On a duplicate: keep what is known, fill in what was missing."""
    return lambda inserted: func.coalesce(orders.c[column], inserted[column])


def _take(column: str):
    """On a duplicate: this event is the authority for the column."""
    return lambda inserted: inserted[column]


async def _remember_show(tx: Tx, schedule_id: int, play_id: int, studio_id: int | None,
                         starts_at: datetime | None, play_name: str | None = None) -> None:
    """What a sale says about its show, kept only while the catalogue events have not."""
    await _insert_missing(tx, shows, id=schedule_id, play_id=play_id, studio_id=studio_id,
                          starts_at=to_db(starts_at) if starts_at else None)
    if play_name is not None:
        await _insert_missing(tx, plays, id=play_id, name=play_name, deleted=False)


async def _insert_missing(tx: Tx, table, **values: Any) -> None:
    """INSERT IGNORE: on an existing row it takes only a shared lock, so the many sales of
    one show do not queue behind each other for the show's row."""
    await tx.execute(insert(table).prefix_with("IGNORE").values(**values))


async def _refresh(tx: Tx, reservation_id: int) -> None:
    """Derive the refund figures and the status of one order from its facts.

    Called after the event has upserted (and so locked) the order row: every writer of the
    reservation's sale rows holds that lock first, so the rows cannot change under us. But a
    plain read would see the transaction's REPEATABLE READ snapshot, which may predate a refund
    committed meanwhile (a replay's catch-up applies many events per transaction): the sale rows
    are read with a locking read, which sees the latest committed rows. The order row itself is
    this transaction's own (upserted) version, so it is current."""
    n, money = (await tx.execute(
        select(func.count(), func.coalesce(func.sum(sales.c.price), 0))
        .where(sales.c.reservation_id == reservation_id, sales.c.refunded.is_(True))
        .with_for_update(read=True))).one()
    row = (await tx.execute(select(
        orders.c.paid_at, orders.c.ticket_count, orders.c.release_reason,
    ).where(orders.c.id == reservation_id).with_for_update())).one()
    status = domain.order_status(paid=row.paid_at is not None, ticket_count=row.ticket_count,
                                 refunded_count=n, release_reason=row.release_reason)
    await tx.execute(orders.update().where(orders.c.id == reservation_id).values(
        refunded_count=n, refunded_total=int(money), status=status.value))


@handlers.event(t.TicketHeld)
async def on_ticket_held(event: t.TicketHeld, tx: Tx, app: App) -> None:
    await _upsert_order(tx, {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "play_name": event.play_name, "studio_id": event.studio_id,
        "starts_at": to_db(event.starts_at), "seats": _seats(event.seats), "total": event.total,
        "currency": event.currency, "created_at": to_db(event.created_at), "held": True,
        "expires_at": to_db(event.expires_at),
    }, {"held": True, "seats": _take("seats"), "total": _take("total"),
        "created_at": _take("created_at"), "expires_at": _take("expires_at"),
        "play_name": _take("play_name"), "studio_id": _take("studio_id"),
        "starts_at": _take("starts_at"), "currency": _take("currency")})
    await _remember_show(tx, event.schedule_id, event.play_id, event.studio_id,
                         event.starts_at, event.play_name)
    await _refresh(tx, event.reservation_id)


@handlers.event(t.TicketSold)
async def on_ticket_sold(event: t.TicketSold, tx: Tx, app: App) -> None:
    paid_at = to_db(event.paid_at)
    await _upsert_order(tx, {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "play_name": event.play_name, "studio_id": event.studio_id,
        "starts_at": to_db(event.starts_at), "seats": _seats(event.tickets),
        "total": event.total, "currency": event.currency, "created_at": paid_at,
        "paid_at": paid_at, "ticket_count": len(event.tickets),
    }, {"paid_at": _take("paid_at"), "ticket_count": _take("ticket_count"),
        "seats": _fill("seats"), "total": _fill("total"), "play_name": _take("play_name"),
        "studio_id": _take("studio_id"), "starts_at": _take("starts_at")})
    if event.tickets:
        statement = insert(sales).values([{
            "reservation_id": event.reservation_id, "ticket_id": ticket.ticket_id,
            "schedule_id": event.schedule_id, "play_id": event.play_id,
            "studio_id": event.studio_id, "seat_row": ticket.row, "seat_col": ticket.col,
            "price": ticket.price, "sold_at": paid_at, "refunded": False,
        } for ticket in sorted(event.tickets, key=lambda x: x.ticket_id)])
        await tx.execute(statement.on_duplicate_key_update(
            sold_at=statement.inserted.sold_at, studio_id=statement.inserted.studio_id))
    await _remember_show(tx, event.schedule_id, event.play_id, event.studio_id,
                         event.starts_at, event.play_name)
    await _refresh(tx, event.reservation_id)


@handlers.event(t.TicketReleased)
async def on_ticket_released(event: t.TicketReleased, tx: Tx, app: App) -> None:
    released_at = to_db(event.released_at)
    await _upsert_order(tx, {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "seats": _seats(event.seats),
        "total": sum(s.price for s in event.seats), "currency": app.settings.currency,
        "created_at": released_at, "released_at": released_at,
        "release_reason": event.reason,
    }, {"released_at": _take("released_at"), "release_reason": _take("release_reason"),
        "seats": _fill("seats"), "total": _fill("total")})
    await _refresh(tx, event.reservation_id)


@handlers.event(t.TicketRefunded)
async def on_ticket_refunded(event: t.TicketRefunded, tx: Tx, app: App) -> None:
    refunded_at = to_db(event.refunded_at)
    await _upsert_order(tx, {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "studio_id": event.studio_id, "currency": event.currency,
        "created_at": refunded_at,
    }, {"studio_id": _fill("studio_id")})
    statement = insert(sales).values(
        reservation_id=event.reservation_id, ticket_id=event.ticket_id,
        schedule_id=event.schedule_id, play_id=event.play_id, studio_id=event.studio_id,
        seat_row=event.row, seat_col=event.col, price=event.price, sold_at=None,
        refunded=True, refunded_at=refunded_at)
    await tx.execute(statement.on_duplicate_key_update(
        refunded=True, refunded_at=statement.inserted.refunded_at))
    await _remember_show(tx, event.schedule_id, event.play_id, event.studio_id, None)
    await _refresh(tx, event.reservation_id)


# -- events: the catalogue -------------------------------------------------------------------

async def _upsert_show(tx: Tx, schedule: p.Schedule, seat_count: int | None = None) -> None:
    values = {"id": schedule.id, "play_id": schedule.play_id, "studio_id": schedule.studio_id,
              "starts_at": to_db(schedule.starts_at), "status": schedule.status.value,
              "seat_count": seat_count}
    statement = insert(shows).values(**values)
    if seat_count is None:  # a move or a cancellation: newer than what a sale snapshot said
        update = {"starts_at": statement.inserted.starts_at,
                  "studio_id": statement.inserted.studio_id}
        if schedule.status == p.ScheduleStatus.cancelled:
            update["status"] = statement.inserted.status
        else:  # a late schedule.updated must not undo a cancellation
            update["status"] = func.coalesce(shows.c.status, statement.inserted.status)
    else:  # schedule.created: the seat count; the rest only where still unknown
        update = {"seat_count": statement.inserted.seat_count,
                  "studio_id": func.coalesce(shows.c.studio_id, statement.inserted.studio_id),
                  "starts_at": func.coalesce(shows.c.starts_at, statement.inserted.starts_at),
                  "status": func.coalesce(shows.c.status, statement.inserted.status)}
    await tx.execute(statement.on_duplicate_key_update(**update))
    await _insert_missing(tx, plays, id=schedule.play_id, name=schedule.play_name,
                          deleted=False)
    await _insert_missing(tx, studios, id=schedule.studio_id, name=schedule.studio_name)


@handlers.event(p.ScheduleCreated)
async def on_schedule_created(event: p.ScheduleCreated, tx: Tx, app: App) -> None:
    await _upsert_show(tx, event.schedule, domain.seat_count(event.seats))


@handlers.event(p.ScheduleUpdated)
async def on_schedule_updated(event: p.ScheduleUpdated, tx: Tx, app: App) -> None:
    await _upsert_show(tx, event.schedule)


@handlers.event(p.ScheduleCancelled)
async def on_schedule_cancelled(event: p.ScheduleCancelled, tx: Tx, app: App) -> None:
    await _upsert_show(tx, event.schedule)


async def _upsert_play(tx: Tx, play: p.Play) -> None:
    statement = insert(plays).values(id=play.id, name=play.name, deleted=False)
    await tx.execute(statement.on_duplicate_key_update(name=statement.inserted.name))


@handlers.event(p.PlayCreated)
async def on_play_created(event: p.PlayCreated, tx: Tx, app: App) -> None:
    await _upsert_play(tx, event.play)


@handlers.event(p.PlayUpdated)
async def on_play_updated(event: p.PlayUpdated, tx: Tx, app: App) -> None:
    await _upsert_play(tx, event.play)


@handlers.event(p.PlayDeleted)
async def on_play_deleted(event: p.PlayDeleted, tx: Tx, app: App) -> None:
    # Its figures stay: money taken is history.
    await tx.execute(plays.update().where(plays.c.id == event.play_id).values(deleted=True))


async def _upsert_studio(tx: Tx, studio: st.Studio) -> None:
    statement = insert(studios).values(id=studio.id, name=studio.name)
    await tx.execute(statement.on_duplicate_key_update(name=statement.inserted.name))


@handlers.event(st.StudioCreated)
async def on_studio_created(event: st.StudioCreated, tx: Tx, app: App) -> None:
    await _upsert_studio(tx, event.studio)


@handlers.event(st.StudioUpdated)
async def on_studio_updated(event: st.StudioUpdated, tx: Tx, app: App) -> None:
    await _upsert_studio(tx, event.studio)


# -- commands: orders ------------------------------------------------------------------------

_order_columns = (
    orders,
    func.coalesce(orders.c.starts_at, shows.c.starts_at).label("show_starts_at"),
    func.coalesce(orders.c.play_name, plays.c.name).label("known_play_name"),
)
_order_source = orders.outerjoin(shows, shows.c.id == orders.c.schedule_id) \
    .outerjoin(plays, plays.c.id == orders.c.play_id)


def to_order(row) -> c.Order:
    return c.Order(
        id=row.id, user_id=row.user_id, schedule_id=row.schedule_id, play_id=row.play_id,
        play_name=row.known_play_name, starts_at=as_utc(row.show_starts_at),
        seats=row.seats or [], total=row.total or 0, currency=row.currency,
        status=c.OrderStatus(row.status), created_at=as_utc(row.created_at),
        paid_at=as_utc(row.paid_at), refunded_total=row.refunded_total)


@handlers.command(c.ListOrders)
async def list_orders(cmd: c.ListOrders, ctx: Context) -> Page[c.Order]:
    caller = _signed_in(ctx.caller)
    user_id = cmd.user_id
    if not caller.at_least(Role.clerk):
        if user_id is not None and user_id != caller.user_id:
            raise errors.Forbidden("only clerks and above may see other users' orders")
        user_id = caller.user_id
    where = []
    if user_id is not None:
        where.append(orders.c.user_id == user_id)
    if cmd.status is not None:
        where.append(orders.c.status == cmd.status.value)
    return await ctx.app.db.page(select(*_order_columns).select_from(_order_source), orders,
                                 where, [orders.c.id.desc()], cmd, to_order)


@handlers.command(c.GetOrder)
async def get_order(cmd: c.GetOrder, ctx: Context) -> c.Order:
    caller = _signed_in(ctx.caller)
    async with ctx.app.db.read() as conn:
        row = (await conn.execute(select(*_order_columns).select_from(_order_source)
                                  .where(orders.c.id == cmd.id))).first()
    if row is None:
        raise errors.NotFound("no such order")
    if not caller.owns_or_at_least(row.user_id, Role.clerk):
        raise errors.Forbidden("this order is not yours")
    return to_order(row)


# -- commands: box office --------------------------------------------------------------------

def sale_figures(*group: Any) -> tuple[Any, ...]:
    """Columns of the figures of a group of sale rows: sold, refunded_n, gross,
    refunded_money (every sale counts as sold, a refunded one also as refunded)."""
    refunded_money = func.sum(case((sales.c.refunded.is_(True), sales.c.price), else_=0))
    return (*group,
            func.count().label("sold"),
            func.sum(case((sales.c.refunded.is_(True), 1), else_=0)).label("refunded_n"),
            func.sum(sales.c.price).label("gross"),
            refunded_money.label("refunded_money"))


@handlers.command(c.GetPlayBoxOffice)
async def play_box_office(cmd: c.GetPlayBoxOffice, ctx: Context) -> c.PlayBoxOffice:
    _require_manager(ctx.caller)
    async with ctx.app.db.read() as conn:
        play = (await conn.execute(select(plays.c.name).where(plays.c.id == cmd.id))).first()
        show_rows = (await conn.execute(select(shows).where(shows.c.play_id == cmd.id))).all()
        figure_rows = (await conn.execute(
            select(*sale_figures(sales.c.schedule_id,
                                 func.max(sales.c.studio_id).label("studio")))
            .where(sales.c.play_id == cmd.id).group_by(sales.c.schedule_id))).all()
    if play is None and not show_rows and not figure_rows:
        raise errors.NotFound("no such play")
    known = {r.id: r for r in show_rows}
    figures = {r.schedule_id: r for r in figure_rows}
    lines = []
    for schedule_id in known.keys() | figures.keys():
        show, fig = known.get(schedule_id), figures.get(schedule_id)
        sold, refunded_n = (fig.sold, int(fig.refunded_n)) if fig else (0, 0)
        gross, refunded = (int(fig.gross), int(fig.refunded_money)) if fig else (0, 0)
        lines.append(c.ShowFigures(
            schedule_id=schedule_id,
            starts_at=as_utc(show.starts_at) if show else None,
            studio_id=(show.studio_id if show and show.studio_id else
                       (fig.studio if fig else None)),
            sold=sold, refunded=refunded_n, net=gross - refunded,
            occupancy=domain.occupancy(sold, refunded_n, show.seat_count if show else None)))
    lines.sort(key=lambda s: (s.starts_at or datetime.max.replace(tzinfo=UTC), s.schedule_id))
    gross = sum(int(f.gross) for f in figure_rows)
    refunded = sum(int(f.refunded_money) for f in figure_rows)
    return c.PlayBoxOffice(
        play_id=cmd.id, play_name=play.name if play else None,
        tickets_sold=sum(f.sold for f in figure_rows),
        tickets_refunded=sum(int(f.refunded_n) for f in figure_rows),
        gross=gross, refunded=refunded, net=gross - refunded, schedules=lines)


@handlers.command(c.GetBoxOffice)
async def box_office(cmd: c.GetBoxOffice, ctx: Context) -> c.BoxOfficeReport:
    _require_manager(ctx.caller)
    start, end = getattr(cmd, "from"), cmd.to
    if start is not None and end is not None and start > end:
        raise errors.ValidationFailed("`from` is after `to`", [
            {"loc": ["query", "from"], "msg": "must not be after `to`"}])
    source = sales.outerjoin(shows, shows.c.id == sales.c.schedule_id)
    where = []
    if start is not None:
        where.append(shows.c.starts_at >= datetime.combine(start, time()))
    if end is not None:
        where.append(shows.c.starts_at < datetime.combine(end + timedelta(days=1), time()))
    if cmd.group_by == c.GroupBy.play:
        key = sales.c.play_id
        source = source.outerjoin(plays, plays.c.id == sales.c.play_id)
        label = func.max(plays.c.name)
    elif cmd.group_by == c.GroupBy.studio:
        key = func.coalesce(sales.c.studio_id, shows.c.studio_id)
        source = source.outerjoin(studios, studios.c.id == key)
        label = func.max(studios.c.name)
    else:
        key = func.date(shows.c.starts_at)
        label = literal_column("NULL")
    async with ctx.app.db.read() as conn:
        rows = (await conn.execute(
            select(*sale_figures(key.label("key"), label.label("label"))).select_from(source)
            .where(*where).group_by(key).order_by(key))).all()
    items = []
    for row in rows:
        row_key = row.key.isoformat() if hasattr(row.key, "isoformat") else row.key
        if row_key is None:
            row_key = "unknown"
        gross, refunded = int(row.gross), int(row.refunded_money)
        items.append(c.BoxOfficeLine(
            key=row_key, label=row.label if cmd.group_by != c.GroupBy.day else str(row_key),
            tickets_sold=row.sold, tickets_refunded=int(row.refunded_n), gross=gross,
            refunded=refunded, net=gross - refunded))
    return c.BoxOfficeReport(items=items)


def _signed_in(caller: Caller) -> Caller:
    if caller.user_id is None:
        raise errors.Unauthorized("sign in first")
    return caller


def _require_manager(caller: Caller) -> None:
    if not caller.at_least(Role.manager):
        raise errors.Forbidden("this needs the manager role")
