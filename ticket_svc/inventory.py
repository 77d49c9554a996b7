"""ticket_svc's own copy of each show (``schedules``) and its seats (``seats``): made from
``schedule.created``, or asked of play_svc when a hold or a seat map arrives first; kept up to
date from ``schedule.updated`` and ``play.updated``. A show's edit is decided by its row here:
an edit's sales check (``begin_show_edit``) locks it, each hold takes its shared lock, and a
hold that finds an edit allowed but not yet arrived gets the show from play_svc first."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import bindparam, text

from messages import errors
from messages.contracts import play as p
from messages.contracts import ticket as c
from messages.contracts.base import SERVICE_CALLER
from messages.db import Tx, as_utc, to_db
from messages.service import App
from ticket_svc import domain, versions
from ticket_svc.queries import SEAT_MAP, seats_sql


async def store(tx: Tx, schedule: p.Schedule, rows: int, cols: int,
                seats: list[Any], version: int = 0, no_single_gaps: bool = False) -> None:
    """Create a show's copy and its seats unless they exist (idempotent: the event and a
    reservation that came first may both do it). ``no_single_gaps``: the seat rule it was
    created with (``set_rules`` changes it afterwards)."""
    created = await tx.execute(text(
        "INSERT IGNORE INTO schedules (id, play_id, studio_id, play_name, starts_at, ends_at, "
        "price, status, seat_rows, seat_cols, version, max_tickets_per_customer, prices, "
        "ticket_types, no_single_gaps) VALUES (:id, :play_id, :studio_id, :play_name, "
        ":starts_at, :ends_at, :price, :status, :rows, :cols, :version, :cap, :prices, :types, "
        ":gaps)"),
        {"id": schedule.id, "play_id": schedule.play_id, "studio_id": schedule.studio_id,
         "play_name": schedule.play_name, "starts_at": to_db(schedule.starts_at),
         "ends_at": to_db(schedule.ends_at),
         "price": schedule.price, "status": schedule.status.value, "rows": rows, "cols": cols,
         "version": version, "cap": schedule.max_tickets_per_customer,
         "prices": _prices_json(schedule), "types": _types_json(schedule.ticket_types),
         "gaps": int(no_single_gaps)})
    if created.rowcount == 0:
        return
    await versions.create(tx, schedule.id)
    values = [f"({int(schedule.id)},{int(s.row)},{int(s.col)},"
              f"'{'available' if s.kind == 'seat' else 'unavailable'}')" for s in seats]
    for start in range(0, len(values), 2000):
        await tx.execute(text(
            "INSERT IGNORE INTO seats (schedule_id, seat_row, seat_col, status) VALUES "
            + ",".join(values[start:start + 2000])))
    # Zones are names (strings): set by bound parameter, one statement per zone and 1,000 seats.
    zoned: dict[str, list[tuple[int, int]]] = {}
    for s in seats:
        if getattr(s, "zone", None):
            zoned.setdefault(s.zone, []).append((s.row, s.col))
    for zone, keys in zoned.items():
        for start in range(0, len(keys), 1000):
            await tx.execute(text(
                "UPDATE seats SET zone = :zone WHERE schedule_id = :id AND "
                + seats_sql(keys[start:start + 1000])), {"zone": zone, "id": schedule.id})


def _types_json(types: list[p.TicketType]) -> str | None:
    return orjson.dumps([t.model_dump(exclude_none=True) for t in types]).decode() \
        if types else None


def _prices_json(schedule: p.Schedule) -> str | None:
    return orjson.dumps(schedule.prices).decode() if schedule.prices else None


async def fetch(app: App, schedule_id: int) -> None:
    """The show is not known here yet (its event is still on its way): ask play_svc."""
    data = await app.rpc.call(p.GetScheduleInventory.name, p.GetScheduleInventory(
        id=schedule_id), SERVICE_CALLER)
    inventory = p.ScheduleInventory.model_validate(data)
    async with app.db.transaction() as tx:
        await store(tx, inventory.schedule, inventory.rows, inventory.cols, inventory.seats,
                    inventory.version, inventory.no_single_gaps)


async def catch_up_with_edit(app: App, schedule_id: int, version: int) -> None:
    """A hold found an edit of the show allowed (``edit_version``) that has not reached this
    copy. play_svc answers once that edit committed, or after ending it if it never will, with
    the show as it stays; this copy takes it if it is not newer already."""
    try:  # within the hold's own deadline, so the buyer learns why
        data = await app.rpc.call(p.GetScheduleInventory.name, p.GetScheduleInventory(
            id=schedule_id, at_least=version), SERVICE_CALLER,
            app.settings.rpc_timeout_seconds / 2)
    except errors.Timeout:
        raise errors.ServiceUnavailable("the show is being changed and play_svc did not "
                                        "say how; try again") from None
    inventory = p.ScheduleInventory.model_validate(data)
    async with app.db.transaction() as tx:
        await apply_edit(tx, inventory.schedule, inventory.version)


async def apply_edit(tx: Tx, s: p.Schedule, version: int) -> None:
    """An edited show's facts, unless this copy already has a later edit (events and the
    answers of ``catch_up_with_edit`` may arrive in any order)."""
    edited = await tx.execute(text(
        "UPDATE schedules SET play_name = :play_name, starts_at = :starts_at, "
        "ends_at = :ends_at, price = :price, "
        "max_tickets_per_customer = :cap, prices = :prices, ticket_types = :types, "
        "version = :version WHERE id = :id AND version <= :version"),
        {"id": s.id, "play_name": s.play_name, "starts_at": to_db(s.starts_at),
         "ends_at": to_db(s.ends_at),
         "price": s.price, "cap": s.max_tickets_per_customer, "prices": _prices_json(s),
         "types": _types_json(s.ticket_types),
         "version": version})
    if edited.rowcount:  # the price is on the seat map: a new seat-map version
        tx.emit(c.TicketShowChanged(schedule_id=s.id, price=s.price,
                                    seats_version=await versions.raise_version(tx, s.id)))


async def rename_play(tx: Tx, play: p.Play) -> None:
    # The play's ticket types count from each show's next hold on (holds made keep theirs).
    await tx.execute(text("UPDATE schedules SET play_name = :name, ticket_types = :types "
                          "WHERE play_id = :id"),
                     {"id": play.id, "name": play.name, "types": _types_json(play.ticket_types)})


async def seat_rows(app: App, schedule_id: int) -> list[Any]:
    async with app.db.read() as conn:
        rows = (await conn.execute(SEAT_MAP, {"id": schedule_id})).all()
    if not rows:
        await fetch(app, schedule_id)
        async with app.db.read() as conn:
            rows = (await conn.execute(SEAT_MAP, {"id": schedule_id})).all()
        if not rows:
            raise errors.NotFound("no such show")
    return rows


async def snapshot(app: App, schedule_id: int) -> c.SeatSnapshot:
    """The show's seats and their version, from one statement (one consistent read): what
    the gateway's seat map of the show starts from."""
    rows = await seat_rows(app, schedule_id)
    first = rows[0]
    cols = first.seat_cols
    codes = bytearray(b"-" * (first.seat_rows * cols))
    zones: dict[str, list[int]] = {}
    for r in rows:
        if r.seat_row is not None and 1 <= r.seat_row <= first.seat_rows \
                and 1 <= r.seat_col <= cols:
            at = (r.seat_row - 1) * cols + r.seat_col - 1
            codes[at] = ord(r.status[0]) if r.status != "unavailable" else ord("x")
            if r.zone is not None:
                zones.setdefault(r.zone, []).append(at)
    return c.SeatSnapshot(schedule_id=schedule_id, rows=first.seat_rows, cols=cols,
                          price=first.price, version=int(first.version),
                          codes=codes.decode(), no_single_gaps=bool(first.no_single_gaps),
                          zones=zones, prices=domain.zone_prices(first.prices),
                          sales_close_at=domain.sales_close_at(
                              first.show_status, as_utc(first.starts_at),
                              app.settings.sales_cutoff_minutes))


async def set_rules(app: App, schedule_id: int, no_single_gaps: bool) -> c.SeatRules:
    """A manager's rules for holds of the show (ticket_svc's own fact about it). The seat map
    shows the rule: a new seat-map version and ``ticket.show_changed`` (the gateway takes a
    fresh snapshot), unless the rule was already so."""
    for attempt in range(2):
        async with app.db.transaction() as tx:
            price, was = (await tx.execute(text(
                "SELECT price, no_single_gaps FROM schedules WHERE id = :id FOR UPDATE"),
                {"id": schedule_id})).first() or (None, None)
            if price is not None:
                version = None
                if bool(was) != no_single_gaps:
                    await tx.execute(text(
                        "UPDATE schedules SET no_single_gaps = :on WHERE id = :id"),
                        {"id": schedule_id, "on": int(no_single_gaps)})
                    version = await versions.raise_version(tx, schedule_id)
                    tx.emit(c.TicketShowChanged(schedule_id=schedule_id, price=price,
                                                seats_version=version))
        if price is not None:
            return c.SeatRules(schedule_id=schedule_id, no_single_gaps=no_single_gaps,
                               seats_version=version)
        if attempt == 0:  # not known here yet
            await fetch(app, schedule_id)
    raise errors.NotFound("no such show")


async def seat_map(app: App, schedule_id: int) -> dict[str, Any]:
    """One query; the answer is built as plain data."""
    rows = await seat_rows(app, schedule_id)
    first = rows[0]
    price, prices = first.price, domain.zone_prices(first.prices)
    seats = [{"row": r.seat_row, "col": r.seat_col, "status": r.status,
              "price": domain.seat_price(r.zone, prices, price), "zone": r.zone}
             for r in rows if r.seat_row is not None]
    available = sum(1 for r in rows if r.status == "available")
    return {"schedule_id": schedule_id, "rows": first.seat_rows, "cols": first.seat_cols,
            "available": available, "seats": seats, "version": int(first.version),
            "no_single_gaps": bool(first.no_single_gaps)}


# -- for play_svc: what is sold, and the edit's sales check -------------------------------------

async def sales_activity(app: App, schedule_ids: list[int]) -> c.SalesActivity:
    ids = sorted(set(schedule_ids))
    found: dict[int, Any] = {}
    if ids:
        async with app.db.read() as conn:
            found = {r.schedule_id: r for r in (await conn.execute(text(
                "SELECT schedule_id, SUM(status = 'held') AS held, SUM(status = 'sold') AS sold "
                "FROM seats WHERE schedule_id IN :ids AND status IN ('held', 'sold') "
                "GROUP BY schedule_id").bindparams(bindparam("ids", expanding=True)),
                {"ids": ids})).all()}
    return c.SalesActivity(schedules=[
        c.SalesActivityLine(schedule_id=i, held=int(found[i].held) if i in found else 0,
                            sold=int(found[i].sold) if i in found else 0) for i in ids])


async def begin_edit(app: App, schedule_id: int, version: int) -> c.SalesActivityLine:
    """play_svc is about to edit the show. The count of its held and sold seats and, when both
    are 0, the version holds must wait for, are one transaction under the show's row lock:
    a hold holds that row's shared lock from its first read to its commit, so each hold is
    wholly before the count (and counted) or after it (and waits for the edit)."""
    for attempt in range(2):
        async with app.db.transaction() as tx:
            known = (await tx.execute(text(
                "SELECT id FROM schedules WHERE id = :id FOR UPDATE"),
                {"id": schedule_id})).first()
            if known is not None:
                found = (await tx.execute(text(
                    "SELECT COALESCE(SUM(status = 'held'), 0) AS held, "
                    "COALESCE(SUM(status = 'sold'), 0) AS sold FROM seats "
                    "WHERE schedule_id = :id AND status IN ('held', 'sold')"),
                    {"id": schedule_id})).first()
                held, sold = int(found.held), int(found.sold)
                if not (held or sold):
                    await tx.execute(text(
                        "UPDATE schedules SET edit_version = GREATEST(edit_version, :v) "
                        "WHERE id = :id"), {"id": schedule_id, "v": version})
                return c.SalesActivityLine(schedule_id=schedule_id, held=held, sold=sold)
        if attempt == 0:  # not known here yet, so nothing is sold: take it, then decide
            await fetch(app, schedule_id)
    raise errors.NotFound("no such show")
