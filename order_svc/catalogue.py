"""order_svc's copies of the catalogue (shows, plays, studios), from play_svc's and
studio_svc's events: the names and seat counts that box-office figures are grouped and
labelled by. A sale may name a show before its catalogue event arrives (see
``orders._remember_show``); the catalogue event then fills in or takes over each column.
"""

from __future__ import annotations

from messages.contracts import play as p
from messages.contracts import studio as st
from messages.db import PlainTx, to_db
from messages.service import App
from order_svc import domain
from order_svc.orders import PLAY_IF_MISSING, STUDIO_IF_MISSING

# schedule.created: the seat count; the rest only where still unknown.
SHOW_CREATED = (
    "INSERT INTO shows (id, play_id, studio_id, starts_at, ends_at, status, seat_count) "
    "VALUES (:id, :play_id, :studio_id, :starts_at, :ends_at, :status, :seat_count) "
    "ON DUPLICATE KEY UPDATE seat_count = VALUES(seat_count), "
    "studio_id = COALESCE(studio_id, VALUES(studio_id)), "
    "starts_at = COALESCE(starts_at, VALUES(starts_at)), "
    "ends_at = COALESCE(ends_at, VALUES(ends_at)), "
    "status = COALESCE(status, VALUES(status))")
# A move: newer than what a sale snapshot said; a late schedule.updated must not undo a
# cancellation.
SHOW_MOVED = (
    "INSERT INTO shows (id, play_id, studio_id, starts_at, ends_at, status, seat_count) "
    "VALUES (:id, :play_id, :studio_id, :starts_at, :ends_at, :status, NULL) "
    "ON DUPLICATE KEY UPDATE starts_at = VALUES(starts_at), ends_at = VALUES(ends_at), "
    "studio_id = VALUES(studio_id), "
    "status = COALESCE(status, VALUES(status))")
SHOW_CANCELLED = (
    "INSERT INTO shows (id, play_id, studio_id, starts_at, ends_at, status, seat_count) "
    "VALUES (:id, :play_id, :studio_id, :starts_at, :ends_at, :status, NULL) "
    "ON DUPLICATE KEY UPDATE starts_at = VALUES(starts_at), ends_at = VALUES(ends_at), "
    "studio_id = VALUES(studio_id), "
    "status = VALUES(status)")
PLAY = ("INSERT INTO plays (id, name, deleted) VALUES (:id, :name, FALSE) "
        "ON DUPLICATE KEY UPDATE name = VALUES(name)")
STUDIO = ("INSERT INTO studios (id, name) VALUES (:id, :name) "
          "ON DUPLICATE KEY UPDATE name = VALUES(name)")


async def upsert_show(tx: PlainTx, schedule: p.Schedule, seat_count: int | None = None) -> None:
    if seat_count is not None:
        statement = SHOW_CREATED
    elif schedule.status == p.ScheduleStatus.cancelled:
        statement = SHOW_CANCELLED
    else:
        statement = SHOW_MOVED
    tx.later(statement, {
        "id": schedule.id, "play_id": schedule.play_id, "studio_id": schedule.studio_id,
        "starts_at": to_db(schedule.starts_at), "ends_at": to_db(schedule.ends_at),
        "status": schedule.status.value,
        "seat_count": seat_count})
    tx.later(PLAY_IF_MISSING, {"id": schedule.play_id, "name": schedule.play_name})
    tx.later(STUDIO_IF_MISSING, {"id": schedule.studio_id, "name": schedule.studio_name})


async def schedule_created(event: p.ScheduleCreated, tx: PlainTx, app: App) -> None:
    await upsert_show(tx, event.schedule, domain.seat_count(event.seats))


async def schedule_updated(event: p.ScheduleUpdated, tx: PlainTx, app: App) -> None:
    await upsert_show(tx, event.schedule)


async def schedule_cancelled(event: p.ScheduleCancelled, tx: PlainTx, app: App) -> None:
    await upsert_show(tx, event.schedule)


async def play_created(event: p.PlayCreated, tx: PlainTx, app: App) -> None:
    tx.later(PLAY, {"id": event.play.id, "name": event.play.name})


async def play_updated(event: p.PlayUpdated, tx: PlainTx, app: App) -> None:
    tx.later(PLAY, {"id": event.play.id, "name": event.play.name})


async def play_deleted(event: p.PlayDeleted, tx: PlainTx, app: App) -> None:
    # Its figures stay: money taken is history.
    tx.later("UPDATE plays SET deleted = TRUE WHERE id = :id", {"id": event.play_id})


async def studio_created(event: st.StudioCreated, tx: PlainTx, app: App) -> None:
    tx.later(STUDIO, {"id": event.studio.id, "name": event.studio.name})


async def studio_updated(event: st.StudioUpdated, tx: PlainTx, app: App) -> None:
    tx.later(STUDIO, {"id": event.studio.id, "name": event.studio.name})
