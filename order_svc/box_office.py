"""Box office: sales and refunds summed per show of a play, or grouped by play, studio or
day, from the ``sales`` rows (every sale counts as sold, a refunded one also as refunded)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select

from messages import errors
from messages.contracts import order as c
from messages.contracts.base import utcnow
from messages.db import as_utc, to_db
from messages.service import App
from order_svc import domain
from order_svc.tables import plays, sales, shows, studios


def sale_figures(*group: Any) -> tuple[Any, ...]:
    """Columns of the figures of a group of sale rows: sold, refunded_n, gross,
    refunded_money (every sale counts as sold, a refunded one also as refunded)."""
    refunded_money = func.sum(case((sales.c.refunded.is_(True), sales.c.price), else_=0))
    return (*group,
            func.count().label("sold"),
            func.sum(case((sales.c.refunded.is_(True), 1), else_=0)).label("refunded_n"),
            func.sum(sales.c.price).label("gross"),
            refunded_money.label("refunded_money"),
            func.sum(case((sales.c.checked_in_at.is_not(None), 1), else_=0)).label("checked_in"))


async def play(app: App, cmd: c.GetPlayBoxOffice) -> c.PlayBoxOffice:
    async with app.db.read() as conn:
        play = (await conn.execute(select(plays.c.name).where(plays.c.id == cmd.id))).first()
        show_rows = (await conn.execute(select(shows).where(shows.c.play_id == cmd.id))).all()
        figure_rows = (await conn.execute(
            select(*sale_figures(sales.c.schedule_id,
                                 func.max(sales.c.studio_id).label("studio")))
            .where(sales.c.play_id == cmd.id).group_by(sales.c.schedule_id))).all()
        type_rows = (await conn.execute(
            select(*sale_figures(sales.c.ticket_type)).where(sales.c.play_id == cmd.id)
            .group_by(sales.c.ticket_type).order_by(sales.c.ticket_type))).all()
    if play is None and not show_rows and not figure_rows:
        raise errors.NotFound("no such play")
    known = {r.id: r for r in show_rows}
    figures = {r.schedule_id: r for r in figure_rows}
    lines = []
    now = utcnow()
    for schedule_id in known.keys() | figures.keys():
        show, fig = known.get(schedule_id), figures.get(schedule_id)
        sold, refunded_n = (fig.sold, int(fig.refunded_n)) if fig else (0, 0)
        checked_in = int(fig.checked_in) if fig else 0
        ended = show is not None and show.ends_at is not None and as_utc(show.ends_at) <= now
        gross, refunded = (int(fig.gross), int(fig.refunded_money)) if fig else (0, 0)
        lines.append(c.ShowFigures(
            schedule_id=schedule_id,
            starts_at=as_utc(show.starts_at) if show else None,
            studio_id=(show.studio_id if show and show.studio_id else
                       (fig.studio if fig else None)),
            sold=sold, refunded=refunded_n, net=gross - refunded,
            occupancy=domain.occupancy(sold, refunded_n, show.seat_count if show else None),
            checked_in=checked_in,
            no_show=domain.no_shows(sold, refunded_n, checked_in) if ended else None))
    lines.sort(key=lambda s: (s.starts_at or datetime.max.replace(tzinfo=UTC), s.schedule_id))
    gross = sum(int(f.gross) for f in figure_rows)
    refunded = sum(int(f.refunded_money) for f in figure_rows)
    return c.PlayBoxOffice(
        play_id=cmd.id, play_name=play.name if play else None,
        tickets_sold=sum(f.sold for f in figure_rows),
        tickets_refunded=sum(int(f.refunded_n) for f in figure_rows),
        gross=gross, refunded=refunded, net=gross - refunded, schedules=lines,
        by_type=[c.TypeFigures(
            type=t.ticket_type, tickets_sold=t.sold, tickets_refunded=int(t.refunded_n),
            gross=int(t.gross), refunded=int(t.refunded_money),
            net=int(t.gross) - int(t.refunded_money)) for t in type_rows])


async def report(app: App, cmd: c.GetBoxOffice) -> c.BoxOfficeReport:
    start, end = getattr(cmd, "from"), cmd.to
    if start is not None and end is not None and start > end:
        raise errors.ValidationFailed("`from` is after `to`", [
            errors.invalid(["query", "from"], "range_order", "must not be after `to`")])
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
    # No-shows count only the shows that have ended (as a play's report says per show).
    no_show = func.sum(case((and_(shows.c.ends_at <= to_db(utcnow()),
                                  sales.c.refunded.is_(False), sales.c.checked_in_at.is_(None)),
                             1), else_=0))
    async with app.db.read() as conn:
        rows = (await conn.execute(
            select(*sale_figures(key.label("key"), label.label("label")),
                   no_show.label("no_show")).select_from(source)
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
            refunded=refunded, net=gross - refunded, checked_in=int(row.checked_in),
            no_show=int(row.no_show or 0)))
    return c.BoxOfficeReport(items=items)
