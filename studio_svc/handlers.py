"""studio_svc's command handlers: one function per command.

Studios keep only the places that are not a plain seat (``seat_kinds``) and the places with a
price zone (``seat_zones``); the full map is built on the way out.

Resizing or deleting a studio races with shows being created in it (play_svc copies the seat
map into each show). play_svc's lock row of the studio decides: ``play.studio_change`` counts
the upcoming shows and, if none, records the studio's next ``layout_version`` as the least a
new show's map must carry, in one transaction; creating a show checks its map's version under
the same lock. The change then commits here only if the version is still the one allowed
(``_lock_unchanged``); ``studio.layout`` with ``at_least`` ends an allowed change that never
committed, so a show is never left waiting for it.
"""

from __future__ import annotations

from sqlalchemy import Table, delete, func, select, tuple_
from sqlalchemy.dialects.mysql import insert
from sqlalchemy.exc import IntegrityError

from messages import errors
from messages.contracts import studio as c
from messages.contracts.base import SERVICE_CALLER, Page, Role, utcnow
from messages.contracts.play import StudioChange
from messages.db import Tx, as_utc, load_row, to_db
from messages.service import Context, Handlers
from studio_svc import domain
from studio_svc.tables import seat_kinds, seat_zones, studios

handlers = Handlers()

def to_studio(row) -> c.Studio:
    return c.Studio(id=row.id, name=row.name, rows=row.rows, cols=row.cols,
                    seat_count=row.seat_count, description=row.description,
                    created_at=as_utc(row.created_at))


async def _load(tx: Tx, studio_id: int, *, lock: bool = False):
    return await load_row(tx, studios, studio_id, "studio", lock="update" if lock else None)


async def _recount(tx: Tx, studio_id: int, rows: int, cols: int) -> None:
    not_seats = (await tx.execute(select(func.count()).select_from(seat_kinds).where(
        seat_kinds.c.studio_id == studio_id))).scalar()
    await tx.execute(studios.update().where(studios.c.id == studio_id).values(
        seat_count=domain.seat_count(rows, cols, not_seats)))


async def _allowed_by_play_svc(ctx: Context, row) -> None:
    """Ask play_svc whether the studio may change (no upcoming show); if it may, play_svc has
    recorded ``layout_version + 1`` as the least version of a new show's seat map, so shows
    made from now on wait for this change (or for its end, see ``get_layout``).

    Half the caller's deadline, so a silent play_svc is a clear 503 before the gateway's 504."""
    try:
        answer = await ctx.app.rpc.ask(
            StudioChange(studio_id=row.id, name=row.name,
                         layout_version=row.layout_version + 1),
            SERVICE_CALLER, ctx.app.settings.rpc_timeout_seconds / 2)
    except errors.Timeout:
        raise errors.ServiceUnavailable("play_svc did not say whether the studio has "
                                        "upcoming shows") from None
    if int(answer["count"]):
        raise errors.Conflict("the studio has upcoming shows; it cannot be resized or deleted")


async def _lock_unchanged(tx: Tx, studio_id: int, allowed_from: int):
    """The studio's row, locked, if no other change (nor ``get_layout`` ending this one)
    raised its version since play_svc allowed the change."""
    row = await _load(tx, studio_id, lock=True)
    if row.layout_version != allowed_from:
        raise errors.Conflict("the studio changed meanwhile; try again", retry_after=1)
    return row


@handlers.command(c.CreateStudio)
async def create_studio(cmd: c.CreateStudio, ctx: Context) -> c.Studio:
    ctx.caller.require(Role.manager)
    try:
        async with ctx.app.db.transaction() as tx:
            result = await tx.execute(studios.insert().values(
                name=cmd.name, rows=cmd.rows, cols=cmd.cols, seat_count=cmd.rows * cmd.cols,
                description=cmd.description, created_at=to_db(utcnow())))
            studio = to_studio(await _load(tx, result.inserted_primary_key[0]))
            tx.emit(c.StudioCreated(studio=studio))
    except IntegrityError:
        raise errors.Conflict("a studio of that name exists") from None
    return studio


@handlers.command(c.ListStudios)
async def list_studios(cmd: c.ListStudios, ctx: Context) -> Page[c.Studio]:
    where = [] if cmd.q is None else [studios.c.name.contains(cmd.q, autoescape=True)]
    return await ctx.app.db.page(select(studios), studios, where, [studios.c.id], cmd,
                                 to_studio)


@handlers.command(c.GetStudio)
async def get_studio(cmd: c.GetStudio, ctx: Context) -> c.Studio:
    return to_studio(await ctx.app.db.row(studios, cmd.id, "studio"))


@handlers.command(c.UpdateStudio)
async def update_studio(cmd: c.UpdateStudio, ctx: Context) -> c.Studio:
    ctx.caller.require(Role.manager)
    changes = cmd.model_dump(exclude_unset=True, exclude={"id"})
    async with ctx.app.db.transaction() as tx:
        before = await _load(tx, cmd.id)
    resized = (changes.get("rows", before.rows) != before.rows
               or changes.get("cols", before.cols) != before.cols)
    # Asked before the transaction, so no lock is held while play_svc answers; the version
    # play_svc allowed must still be next when the change commits.
    if resized:
        await _allowed_by_play_svc(ctx, before)
    try:
        async with ctx.app.db.transaction() as tx:
            if resized:
                before = await _lock_unchanged(tx, cmd.id, before.layout_version)
                changes["layout_version"] = before.layout_version + 1
            else:
                before = await _load(tx, cmd.id, lock=True)
            if changes:
                await tx.execute(studios.update().where(studios.c.id == cmd.id)
                                 .values(**changes))
            if resized:
                rows, cols = changes.get("rows", before.rows), changes.get("cols", before.cols)
                for places in (seat_kinds, seat_zones):
                    await tx.execute(delete(places).where(
                        places.c.studio_id == cmd.id,
                        (places.c.seat_row > rows) | (places.c.seat_col > cols)))
                await _recount(tx, cmd.id, rows, cols)
            studio = to_studio(await _load(tx, cmd.id))
            if changes:
                tx.emit(c.StudioUpdated(studio=studio))
    except IntegrityError:
        raise errors.Conflict("a studio of that name exists") from None
    return studio


@handlers.command(c.DeleteStudio)
async def delete_studio(cmd: c.DeleteStudio, ctx: Context) -> None:
    ctx.caller.require(Role.manager)
    async with ctx.app.db.transaction() as tx:
        before = await _load(tx, cmd.id)
    await _allowed_by_play_svc(ctx, before)
    async with ctx.app.db.transaction() as tx:
        await _lock_unchanged(tx, cmd.id, before.layout_version)
        await tx.execute(delete(seat_kinds).where(seat_kinds.c.studio_id == cmd.id))
        await tx.execute(delete(seat_zones).where(seat_zones.c.studio_id == cmd.id))
        await tx.execute(delete(studios).where(studios.c.id == cmd.id))
        tx.emit(c.StudioDeleted(studio_id=cmd.id))


async def _seat_map(tx: Tx, row) -> dict:
    kinds = {(k.seat_row, k.seat_col): k.kind for k in (await tx.execute(
        select(seat_kinds.c.seat_row, seat_kinds.c.seat_col, seat_kinds.c.kind).where(
            seat_kinds.c.studio_id == row.id))).all()}
    zones = {(z.seat_row, z.seat_col): z.zone for z in (await tx.execute(
        select(seat_zones.c.seat_row, seat_zones.c.seat_col, seat_zones.c.zone).where(
            seat_zones.c.studio_id == row.id))).all()}
    # A plain dict: a 100×100 map is 10,000 places, built without a model per place.
    return {"studio_id": row.id, "name": row.name, "rows": row.rows, "cols": row.cols,
            "seats": c.full_map(row.rows, row.cols, kinds, zones)}


@handlers.command(c.GetSeatMap)
async def get_seat_map(cmd: c.GetSeatMap, ctx: Context) -> dict:
    async with ctx.app.db.transaction() as tx:
        return await _seat_map(tx, await _load(tx, cmd.id))


@handlers.command(c.GetLayout)
async def get_layout(cmd: c.GetLayout, ctx: Context) -> dict:
    """The seat map a new show copies, with its version. ``at_least`` comes from play_svc when
    the map it read is older than a change it allowed: the row lock waits for that change if
    it is committing; if it never did (refused here, rolled back, its answer lost), raising
    the version ends it, since it commits only from the version it was allowed from."""
    async with ctx.app.db.transaction() as tx:
        row = await _load(tx, cmd.id, lock=cmd.at_least > 0)
        if row.layout_version < cmd.at_least:
            await tx.execute(studios.update().where(studios.c.id == cmd.id)
                             .values(layout_version=cmd.at_least))
            row = await _load(tx, cmd.id)
        return {**await _seat_map(tx, row), "layout_version": row.layout_version}


async def _set_places(tx: Tx, places: Table, column: str, studio_id: int,
                      cleared: list[tuple[int, int]], values: list[tuple[int, int, str]]) -> None:
    """A bulk edit of one of the studio's place tables (``seat_kinds``, ``seat_zones``): the
    ``cleared`` places lose their row (a plain seat, no zone), the others get ``column`` set."""
    if cleared:
        await tx.execute(delete(places).where(
            places.c.studio_id == studio_id,
            tuple_(places.c.seat_row, places.c.seat_col).in_(cleared)))
    if values:
        upsert = insert(places)
        await tx.execute(upsert.on_duplicate_key_update({column: upsert.inserted[column]}), [
            {"studio_id": studio_id, "seat_row": r, "seat_col": col, column: value}
            for r, col, value in values])


@handlers.command(c.EditSeats)
async def edit_seats(cmd: c.EditSeats, ctx: Context) -> dict:
    ctx.caller.require(Role.manager)
    async with ctx.app.db.transaction() as tx:
        row = await _load(tx, cmd.id, lock=True)
        problems = domain.edit_errors(row.rows, row.cols, cmd.seats)
        if problems:
            raise errors.ValidationFailed("some places are not on the seat map", problems)
        await _set_places(tx, seat_kinds, "kind", cmd.id, *domain.split_edit(cmd.seats))
        await _set_places(tx, seat_zones, "zone", cmd.id, *domain.zone_edit(cmd.seats))
        await _recount(tx, cmd.id, row.rows, row.cols)
        row = await _load(tx, cmd.id)
        tx.emit(c.StudioUpdated(studio=to_studio(row)))
        return await _seat_map(tx, row)
