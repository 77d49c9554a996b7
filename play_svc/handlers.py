"""play_svc's command and event handlers: one function per command or event.

Overlap of shows in a studio is decided by the database: scheduling or moving a show locks the
studio's row (``studios``) first, then checks and writes, in one transaction. The same lock
decides a show against a resize or delete of its studio: ``play.studio_change`` allows one only
while no show is upcoming and then raises the studio's ``layout_version``, which the seat map of
a new show must reach (an older map is read again, see ``create_schedule``).

Whether a show has tickets held or sold is ticket_svc's knowledge: ``ticket.begin_show_edit``
counts them and, if none, makes later holds wait for the show's next ``version`` in one
ticket_svc transaction; the edit then commits only from the version it was allowed from.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.mysql import insert

from messages import errors
from messages.contracts import play as c
from messages.contracts import studio as s
from messages.contracts import ticket as t
from messages.contracts.base import SERVICE_CALLER, Page, Role, utcnow
from messages.db import Tx, as_utc, load_row, to_db
from messages.service import App, Context, Handlers
from play_svc import domain
from play_svc.tables import plays, schedules, studios

log = logging.getLogger("ttms.play")
handlers = Handlers()

SCHEDULED = c.ScheduleStatus.scheduled.value
CANCELLED = c.ScheduleStatus.cancelled.value


# -- plays ----------------------------------------------------------------------------------

def to_play(row) -> c.Play:
    return c.Play(id=row.id, name=row.name, kind=row.kind, area=row.area, rating=row.rating,
                  duration_minutes=row.duration_minutes, description=row.description,
                  starts_on=row.starts_on, ends_on=row.ends_on, price=row.price,
                  ticket_types=row.ticket_types or [])


# Deleted plays stay as rows (their past shows still name them) but are not found.
LIVE = plays.c.deleted_at.is_(None)


async def _load_play(conn, play_id: int, *, lock: str | None = None):
    return await load_row(conn, plays, play_id, "play", LIVE, lock=lock)


@handlers.command(c.CreatePlay)
async def create_play(cmd: c.CreatePlay, ctx: Context) -> c.Play:
    ctx.caller.require(Role.manager)
    async with ctx.app.db.transaction() as tx:
        values = cmd.model_dump(exclude_none=True)
        values["ticket_types"] = values.get("ticket_types") or None
        result = await tx.execute(plays.insert().values(**values, created_at=to_db(utcnow())))
        play = to_play(await _load_play(tx, result.inserted_primary_key[0]))
        tx.emit(c.PlayCreated(play=play))
    return play


@handlers.command(c.ListPlays)
async def list_plays(cmd: c.ListPlays, ctx: Context) -> Page[c.Play]:
    where = [LIVE]
    if cmd.q is not None:
        where.append(plays.c.name.contains(cmd.q, autoescape=True))
    if cmd.kind is not None:
        where.append(plays.c.kind == cmd.kind.value)
    return await ctx.app.db.page(select(plays), plays, where, [plays.c.id], cmd, to_play)


@handlers.command(c.GetPlay)
async def get_play(cmd: c.GetPlay, ctx: Context) -> c.Play:
    return to_play(await ctx.app.db.row(plays, cmd.id, "play", LIVE))


@handlers.command(c.UpdatePlay)
async def update_play(cmd: c.UpdatePlay, ctx: Context) -> c.Play:
    """Shows already scheduled keep their times (a new duration counts for new or moved
    shows); their ``play_name`` follows a rename at once, being read from the play."""
    ctx.caller.require(Role.manager)
    changes = cmd.model_dump(exclude_unset=True, exclude={"id"})
    async with ctx.app.db.transaction() as tx:
        before = await _load_play(tx, cmd.id, lock="update")
        if changes.get("starts_on", before.starts_on) > changes.get("ends_on", before.ends_on):
            raise errors.ValidationFailed("the run must not end before it starts", [
                errors.invalid(["body", "starts_on" if "starts_on" in changes else "ends_on"],
                               "run_order", "starts_on must not be after ends_on")])
        if not changes:
            return to_play(before)
        if "ticket_types" in changes:  # priced by type from the next hold of each show on
            changes["ticket_types"] = [t.model_dump(exclude_none=True)
                                       for t in cmd.ticket_types] or None
        await tx.execute(plays.update().where(plays.c.id == cmd.id).values(**changes))
        play = to_play(await _load_play(tx, cmd.id))
        was = to_play(before)
        changed = sorted(k for k in changes if getattr(play, k) != getattr(was, k))
        tx.emit(c.PlayUpdated(play=play, changed=changed, actor=ctx.caller.actor()))
    return play


@handlers.command(c.DeletePlay)
async def delete_play(cmd: c.DeletePlay, ctx: Context) -> None:
    """Refused while an upcoming show has tickets sold; otherwise the play goes and its upcoming
    shows are cancelled (which releases their holds)."""
    ctx.caller.require(Role.manager)
    async with ctx.app.db.read() as conn:
        await _load_play(conn, cmd.id)
        upcoming = (await conn.execute(select(schedules.c.id).where(
            _upcoming(), schedules.c.play_id == cmd.id))).scalars().all()
    if upcoming:
        activity = await _sales_activity(ctx.app, upcoming)
        if any(sold for _, sold in activity.values()):
            raise errors.Conflict("an upcoming show of this play has tickets sold")
    async with ctx.app.db.transaction() as tx:
        await _load_play(tx, cmd.id, lock="update")
        await tx.execute(select(schedules.c.id).where(
            _upcoming(), schedules.c.play_id == cmd.id).with_for_update())
        cancelled = (await tx.execute(_schedule_query().where(
            _upcoming(), schedules.c.play_id == cmd.id))).all()
        # A show scheduled after the check above has had no time to sell; it is cancelled too.
        if cancelled:
            await tx.execute(schedules.update().where(
                schedules.c.id.in_([r.id for r in cancelled])).values(status=CANCELLED))
        await tx.execute(plays.update().where(plays.c.id == cmd.id)
                         .values(deleted_at=to_db(utcnow())))
        for row in cancelled:
            schedule = to_schedule(row).model_copy(update={"status": c.ScheduleStatus.cancelled})
            tx.emit(c.ScheduleCancelled(schedule=schedule))
        tx.emit(c.PlayDeleted(play_id=cmd.id))


# -- schedules ------------------------------------------------------------------------------

def _schedule_query():
    return (select(schedules.c.id, schedules.c.play_id, schedules.c.studio_id,
                   schedules.c.starts_at, schedules.c.ends_at, schedules.c.price,
                   schedules.c.status, schedules.c.max_tickets_per_customer,
                   schedules.c.prices, plays.c.ticket_types,
                   plays.c.name.label("play_name"),
                   studios.c.name.label("studio_name"))
            .select_from(schedules.join(plays, plays.c.id == schedules.c.play_id)
                         .join(studios, studios.c.id == schedules.c.studio_id)))


def to_schedule(row) -> c.Schedule:
    return c.Schedule(id=row.id, play_id=row.play_id, studio_id=row.studio_id,
                      play_name=row.play_name, studio_name=row.studio_name,
                      starts_at=as_utc(row.starts_at), ends_at=as_utc(row.ends_at),
                      price=row.price, status=row.status,
                      max_tickets_per_customer=row.max_tickets_per_customer,
                      prices=row.prices or {}, ticket_types=row.ticket_types or [])


async def _load_schedule(conn, schedule_id: int, *, lock: bool = False) -> c.Schedule:
    if lock:  # the show's row alone: studio rows are only ever locked first (_lock_studio)
        await conn.execute(select(schedules.c.id).where(schedules.c.id == schedule_id)
                           .with_for_update())
    row = (await conn.execute(_schedule_query().where(schedules.c.id == schedule_id))).first()
    if row is None:
        raise errors.NotFound("no such schedule")
    return to_schedule(row)


def _upcoming():
    """Scheduled shows that have not ended."""
    return and_(schedules.c.status == SCHEDULED, schedules.c.ends_at > to_db(utcnow()))


async def _ensure_studio_row(app: App, studio_id: int, name: str) -> None:
    """The studio's lock row, made when its first show is scheduled. An existing row keeps its
    name: studio.* events keep that current."""
    async with app.db.read() as conn:
        if (await conn.execute(select(studios.c.id).where(studios.c.id == studio_id))).first():
            return
    async with app.db.transaction() as tx:
        upsert = insert(studios).values(id=studio_id, name=name)
        await tx.execute(upsert.on_duplicate_key_update(id=upsert.inserted.id))


async def _lock_studio(tx: Tx, studio_id: int) -> int:
    """Taken first in every transaction that checks overlap in a studio or allows it to change:
    they run one at a time per studio, and the consistent reads after it see every show
    committed before. → the least layout_version a new show's seat map must have."""
    locked = (await tx.execute(select(studios.c.layout_version).where(
        studios.c.id == studio_id).with_for_update())).first()
    if locked is None:
        raise errors.NotFound("no such studio")
    return locked.layout_version


async def _check_overlap(tx: Tx, studio_id: int, starts_at: datetime, ends_at: datetime,
                         ignore: int | None = None) -> None:
    query = select(schedules.c.id, schedules.c.starts_at).where(
        schedules.c.studio_id == studio_id, schedules.c.status == SCHEDULED,
        schedules.c.starts_at < to_db(ends_at), schedules.c.ends_at > to_db(starts_at))
    if ignore is not None:
        query = query.where(schedules.c.id != ignore)
    clash = (await tx.execute(query.limit(1))).first()
    if clash is not None:
        raise errors.ScheduleConflict(
            f"the show overlaps show {clash.id} in this studio",
            [errors.invalid(["body", "starts_at"], "schedule_overlap",
                            f"overlaps schedule {clash.id}", schedule_id=clash.id)])


def _check_run(play, starts_at: datetime) -> None:
    if not domain.in_run(starts_at, play.starts_on, play.ends_on):
        raise errors.ValidationFailed("the show must start inside the play's run", [
            errors.invalid(["body", "starts_at"], "outside_run",
                           f"the play runs from {play.starts_on} to {play.ends_on}",
                           starts_on=str(play.starts_on), ends_on=str(play.ends_on))])


async def _begin_edit(app: App, schedule_id: int, version: int) -> tuple[int, int]:
    """(held, sold) of the show from ticket_svc, which, when both are 0, has made holds wait
    for ``version``. If it cannot say, nothing is changed."""
    try:
        answer = await app.rpc.ask(t.BeginShowEdit(schedule_id=schedule_id, version=version),
                                   SERVICE_CALLER, _inner_timeout(app))
    except errors.ServiceError as exc:
        log.warning("ticket.begin_show_edit failed: %s %s", exc.code, exc.message)
        raise errors.ServiceUnavailable(
            "cannot learn the show's ticket sales right now; try again") from None
    return int(answer["held"]), int(answer["sold"])


async def _sales_activity(app: App, schedule_ids: list[int]) -> dict[int, tuple[int, int]]:
    """schedule id → (held, sold), from ticket_svc. If it cannot say, nothing is changed."""
    try:
        answer = await app.rpc.ask(t.GetSalesActivity(schedule_ids=schedule_ids),
                                   SERVICE_CALLER, _inner_timeout(app))
    except errors.ServiceError as exc:
        log.warning("ticket.sales_activity failed: %s %s", exc.code, exc.message)
        raise errors.ServiceUnavailable(
            "cannot learn the show's ticket sales right now; try again") from None
    return {line["schedule_id"]: (int(line["held"]), int(line["sold"]))
            for line in answer["schedules"]}


async def _studio_layout(app: App, studio_id: int, at_least: int = 0) -> dict[str, Any]:
    """The studio's seat map and its layout_version from studio_svc (404: no such studio)."""
    try:
        return await app.rpc.ask(s.GetLayout(id=studio_id, at_least=at_least),
                                 SERVICE_CALLER, _inner_timeout(app))
    except errors.Timeout:
        raise errors.ServiceUnavailable("studio_svc did not send the seat map") from None


class _StaleSeatMap(Exception):
    def __init__(self, layout_version: int) -> None:
        self.layout_version = layout_version


@handlers.command(c.CreateSchedule)
async def create_schedule(cmd: c.CreateSchedule, ctx: Context) -> c.Schedule:
    ctx.caller.require(Role.manager)
    async with ctx.app.db.read() as conn:
        play = await _load_play(conn, cmd.play_id)
    _check_run(play, cmd.starts_at)
    seat_map = await _studio_layout(ctx.app, cmd.studio_id)
    await _ensure_studio_row(ctx.app, cmd.studio_id, seat_map["name"])
    for _ in range(3):
        try:
            return await _insert_schedule(ctx.app, cmd, seat_map)
        except _StaleSeatMap as stale:
            # A resize or delete was allowed after the map was read: studio_svc waits for it
            # to commit (or ends it) and sends the map as it is now; 404 if it was a delete.
            seat_map = await _studio_layout(ctx.app, cmd.studio_id, stale.layout_version)
    raise errors.Conflict("the studio is being changed; try again", retry_after=1)


async def _insert_schedule(app: App, cmd: c.CreateSchedule,
                           seat_map: dict[str, Any]) -> c.Schedule:
    async with app.db.transaction() as tx:
        least = await _lock_studio(tx, cmd.studio_id)
        if seat_map["layout_version"] < least:
            raise _StaleSeatMap(least)
        play = await _load_play(tx, cmd.play_id, lock="share")  # not deleted meanwhile
        starts_at = cmd.starts_at
        ends_at = domain.ends_at(starts_at, play.duration_minutes)
        await _check_overlap(tx, cmd.studio_id, starts_at, ends_at)
        result = await tx.execute(schedules.insert().values(
            play_id=cmd.play_id, studio_id=cmd.studio_id, starts_at=to_db(starts_at),
            ends_at=to_db(ends_at), price=play.price if cmd.price is None else cmd.price,
            status=SCHEDULED, max_tickets_per_customer=cmd.max_tickets_per_customer,
            prices=cmd.prices or None,
            seat_map=domain.snapshot(seat_map, cmd.no_single_gaps), created_at=to_db(utcnow())))
        schedule = await _load_schedule(tx, result.inserted_primary_key[0])
        tx.emit(c.ScheduleCreated(schedule=schedule, rows=seat_map["rows"],
                                  cols=seat_map["cols"], seats=seat_map["seats"],
                                  no_single_gaps=cmd.no_single_gaps))
    return schedule


@handlers.command(c.ListSchedules)
async def list_schedules(cmd: c.ListSchedules, ctx: Context) -> Page[c.Schedule]:
    where = []
    if cmd.play_id is not None:
        where.append(schedules.c.play_id == cmd.play_id)
    if cmd.studio_id is not None:
        where.append(schedules.c.studio_id == cmd.studio_id)
    if cmd.status is not None:
        where.append(schedules.c.status == cmd.status.value)
    if (starts_from := getattr(cmd, "from")) is not None:
        where.append(schedules.c.starts_at >= to_db(starts_from))
    if cmd.to is not None:
        where.append(schedules.c.starts_at < to_db(cmd.to))
    return await ctx.app.db.page(_schedule_query(), schedules, where,
                                 [schedules.c.starts_at, schedules.c.id], cmd, to_schedule)


@handlers.command(c.GetSchedule)
async def get_schedule(cmd: c.GetSchedule, ctx: Context) -> c.Schedule:
    async with ctx.app.db.read() as conn:
        return await _load_schedule(conn, cmd.id)


@handlers.command(c.UpdateSchedule)
async def update_schedule(cmd: c.UpdateSchedule, ctx: Context) -> c.Schedule:
    """Move or re-price a show, only while no ticket of it is held or sold. A moved show keeps
    the play's current duration and must fit the run and the studio."""
    ctx.caller.require(Role.manager)
    changes = cmd.model_dump(exclude_unset=True, exclude={"id"})
    async with ctx.app.db.read() as conn:
        current = await _load_schedule(conn, cmd.id)
        if current.status is not c.ScheduleStatus.scheduled:
            raise errors.Conflict("the show is cancelled")
        if not changes:
            return current
        play = None
        if "starts_at" in changes:
            play = await _load_play(conn, current.play_id)
            _check_run(play, cmd.starts_at)
        version = (await conn.execute(select(schedules.c.version).where(
            schedules.c.id == cmd.id))).scalar()
    # ticket_svc counts the show's sales and, if there are none, makes holds wait for the
    # show's next version, in one transaction: none slips in after the count.
    held, sold = await _begin_edit(ctx.app, cmd.id, version + 1)
    if held or sold:
        raise errors.Conflict(
            f"the show has tickets held ({held}) or sold ({sold}); it cannot be changed")
    async with ctx.app.db.transaction() as tx:
        await _lock_studio(tx, current.studio_id)
        locked = (await tx.execute(select(schedules.c.version).where(
            schedules.c.id == cmd.id).with_for_update())).scalar()
        if locked != version:  # a hold ended this edit (schedule_inventory), or another edit
            raise errors.Conflict("the show changed or its sales began meanwhile; try again",
                                  retry_after=1)
        current = await _load_schedule(tx, cmd.id)
        if current.status is not c.ScheduleStatus.scheduled:
            raise errors.Conflict("the show is cancelled")
        values: dict[str, Any] = {"version": version + 1}
        if "price" in changes:
            values["price"] = cmd.price
        if "prices" in changes:
            values["prices"] = cmd.prices or None
        if "max_tickets_per_customer" in changes:
            values["max_tickets_per_customer"] = cmd.max_tickets_per_customer
        if play is not None:
            ends_at = domain.ends_at(cmd.starts_at, play.duration_minutes)
            await _check_overlap(tx, current.studio_id, cmd.starts_at, ends_at, ignore=cmd.id)
            values.update(starts_at=to_db(cmd.starts_at), ends_at=to_db(ends_at))
        await tx.execute(schedules.update().where(schedules.c.id == cmd.id).values(**values))
        schedule = await _load_schedule(tx, cmd.id)
        tx.emit(c.ScheduleUpdated(schedule=schedule, schedule_version=version + 1,
                                  actor=ctx.caller.actor()))
    return schedule


@handlers.command(c.CancelSchedule)
async def cancel_schedule(cmd: c.CancelSchedule, ctx: Context) -> None:
    """Cancelling a cancelled show is a no-op (no second event)."""
    ctx.caller.require(Role.manager)
    async with ctx.app.db.transaction() as tx:
        current = await _load_schedule(tx, cmd.id, lock=True)
        if current.status is c.ScheduleStatus.cancelled:
            return
        await tx.execute(schedules.update().where(schedules.c.id == cmd.id)
                         .values(status=CANCELLED))
        tx.emit(c.ScheduleCancelled(schedule=current.model_copy(
            update={"status": c.ScheduleStatus.cancelled}), actor=ctx.caller.actor()))


@handlers.command(c.GetScheduleInventory)
async def schedule_inventory(cmd: c.GetScheduleInventory, ctx: Context) -> dict:
    if not cmd.at_least:
        async with ctx.app.db.read() as conn:
            return await _inventory(conn, cmd.id)
    # A hold found an edit allowed after the show it knows: wait for the edit (the row lock),
    # or end it if it never committed, and answer the show as it stays.
    async with ctx.app.db.transaction() as tx:
        version = (await tx.execute(select(schedules.c.version).where(
            schedules.c.id == cmd.id).with_for_update())).scalar()
        if version is None:
            raise errors.NotFound("no such schedule")
        if version < cmd.at_least:
            await tx.execute(schedules.update().where(schedules.c.id == cmd.id)
                             .values(version=cmd.at_least))
        return await _inventory(tx, cmd.id)


async def _inventory(conn, schedule_id: int) -> dict:
    schedule = await _load_schedule(conn, schedule_id)
    stored = (await conn.execute(select(schedules.c.seat_map, schedules.c.version).where(
        schedules.c.id == schedule_id))).first()
    return {"schedule": schedule.model_dump(mode="json"), **domain.expand(stored.seat_map),
            "version": stored.version}


@handlers.command(c.StudioChange)
async def studio_change(cmd: c.StudioChange, ctx: Context) -> c.UpcomingCount:
    """studio_svc asks before a resize or delete. The count and the new least layout_version
    are one transaction under the studio's lock row, like every show's creation."""
    await _ensure_studio_row(ctx.app, cmd.studio_id, cmd.name)
    async with ctx.app.db.transaction() as tx:
        await _lock_studio(tx, cmd.studio_id)
        count = (await tx.execute(select(func.count()).select_from(schedules).where(
            _upcoming(), schedules.c.studio_id == cmd.studio_id))).scalar()
        if not count:
            await tx.execute(studios.update().where(studios.c.id == cmd.studio_id).values(
                layout_version=func.greatest(studios.c.layout_version, cmd.layout_version)))
    return c.UpcomingCount(count=count)


@handlers.command(c.StudioUpcoming)
async def studio_upcoming(cmd: c.StudioUpcoming, ctx: Context) -> c.UpcomingCount:
    async with ctx.app.db.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(schedules).where(
            _upcoming(), schedules.c.studio_id == cmd.studio_id))).scalar()
    return c.UpcomingCount(count=count)


# -- events ---------------------------------------------------------------------------------

async def _keep_studio_name(studio: s.Studio, tx: Tx) -> None:
    upsert = insert(studios).values(id=studio.id, name=studio.name)
    await tx.execute(upsert.on_duplicate_key_update(name=upsert.inserted.name))


@handlers.event(s.StudioCreated)
async def on_studio_created(event: s.StudioCreated, tx: Tx, app: App) -> None:
    await _keep_studio_name(event.studio, tx)


@handlers.event(s.StudioUpdated)
async def on_studio_updated(event: s.StudioUpdated, tx: Tx, app: App) -> None:
    await _keep_studio_name(event.studio, tx)


def _inner_timeout(app: App) -> float:
    """Calls made while answering a call: well inside the caller's deadline, so the caller
    learns why (503) instead of timing out itself."""
    return app.settings.rpc_timeout_seconds / 2
