"""Orders: one row per reservation, built from ticket_svc's events (``held``, ``sold``,
``released``, ``refunded``) into ``orders`` and ``sales`` (a row per sold ticket), and read back
as contract models.

Plain SQL on a PlainTx (``plain=True``): fixed statements, no SQLAlchemy on the path every
sale takes. The Subscriber applies the events delivered together in one transaction (and the
replay many more), so no handler trusts the transaction's snapshot: every read is a locking
read, which sees the latest committed rows (see ``_refresh``).

The derived figures of an order (refunds, status) are computed once per transaction for every
order its events touched (``_refresh_at_commit``): a batch of events is then two round trips,
however many events it holds.

ON DUPLICATE KEY UPDATE rules, per column: ``c = VALUES(c)`` when this event is the
authority for it (take), ``c = COALESCE(c, VALUES(c))`` when it only fills in what no other
event said yet (fill).
"""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import func

from messages.contracts import order as c
from messages.contracts import ticket as t
from messages.db import PlainTx, as_utc, to_db
from messages.service import App
from order_svc import domain
from order_svc.tables import orders, plays, shows


def _seats(seats) -> str:
    return orjson.dumps([{"row": s.row, "col": s.col, "price": s.price} for s in seats]).decode()


def _new_status(*, paid: bool = False, ticket_count: int | None = None,
                release_reason: str | None = None) -> str:
    """The status of an order row this event inserts (no refunds counted yet); ``_refresh``
    sets the one that follows from every fact."""
    return domain.order_status(paid=paid, ticket_count=ticket_count, refunded_count=0,
                               release_reason=release_reason).value


HELD = (
    "INSERT INTO orders (id, user_id, schedule_id, play_id, play_name, studio_id, starts_at, "
    "seats, total, currency, created_at, held, expires_at, refunded_count, refunded_total, "
    "status) VALUES (:id, :user_id, :schedule_id, :play_id, :play_name, :studio_id, "
    ":starts_at, :seats, :total, :currency, :created_at, TRUE, :expires_at, 0, 0, :status) "
    "ON DUPLICATE KEY UPDATE held = TRUE, seats = VALUES(seats), total = VALUES(total), "
    "created_at = VALUES(created_at), expires_at = VALUES(expires_at), "
    "play_name = VALUES(play_name), studio_id = VALUES(studio_id), "
    "starts_at = VALUES(starts_at), currency = VALUES(currency)")

SOLD = (
    "INSERT INTO orders (id, user_id, schedule_id, play_id, play_name, studio_id, starts_at, "
    "seats, total, currency, created_at, held, paid_at, ticket_count, refunded_count, "
    "refunded_total, status) VALUES (:id, :user_id, :schedule_id, :play_id, :play_name, "
    ":studio_id, :starts_at, :seats, :total, :currency, :paid_at, FALSE, :paid_at, "
    ":ticket_count, 0, 0, :status) "
    "ON DUPLICATE KEY UPDATE paid_at = VALUES(paid_at), ticket_count = VALUES(ticket_count), "
    "seats = COALESCE(seats, VALUES(seats)), total = COALESCE(total, VALUES(total)), "
    "play_name = VALUES(play_name), studio_id = VALUES(studio_id), "
    "starts_at = VALUES(starts_at)")

SOLD_TICKETS = (
    "INSERT INTO sales (reservation_id, ticket_id, schedule_id, play_id, studio_id, seat_row, "
    "seat_col, price, ticket_type, sold_at, refunded) VALUES (:reservation_id, :ticket_id, "
    ":schedule_id, :play_id, :studio_id, :seat_row, :seat_col, :price, :ticket_type, :sold_at, "
    ":refunded) "
    "ON DUPLICATE KEY UPDATE sold_at = VALUES(sold_at), studio_id = VALUES(studio_id)")

RELEASED = (
    "INSERT INTO orders (id, user_id, schedule_id, play_id, seats, total, currency, "
    "created_at, held, released_at, release_reason, refunded_count, refunded_total, status) "
    "VALUES (:id, :user_id, :schedule_id, :play_id, :seats, :total, :currency, :released_at, "
    "FALSE, :released_at, :reason, 0, 0, :status) "
    "ON DUPLICATE KEY UPDATE released_at = VALUES(released_at), "
    "release_reason = VALUES(release_reason), seats = COALESCE(seats, VALUES(seats)), "
    "total = COALESCE(total, VALUES(total))")

REFUNDED = (
    "INSERT INTO orders (id, user_id, schedule_id, play_id, studio_id, currency, created_at, "
    "held, refunded_count, refunded_total, status) VALUES (:id, :user_id, :schedule_id, "
    ":play_id, :studio_id, :currency, :refunded_at, FALSE, 0, 0, :status) "
    "ON DUPLICATE KEY UPDATE studio_id = COALESCE(studio_id, VALUES(studio_id))")

REFUNDED_TICKET = (
    "INSERT INTO sales (reservation_id, ticket_id, schedule_id, play_id, studio_id, seat_row, "
    "seat_col, price, ticket_type, sold_at, refunded, refunded_at) VALUES (:id, :ticket_id, "
    ":schedule_id, :play_id, :studio_id, :row, :col, :price, :ticket_type, NULL, TRUE, "
    ":refunded_at) "
    "ON DUPLICATE KEY UPDATE refunded = TRUE, refunded_at = VALUES(refunded_at)")

# INSERT IGNORE: on an existing row it takes only a shared lock, so the many sales of one show
# do not queue behind each other for the show's row.
SHOW_IF_MISSING = ("INSERT IGNORE INTO shows (id, play_id, studio_id, starts_at) "
                   "VALUES (:id, :play_id, :studio_id, :starts_at)")
PLAY_IF_MISSING = "INSERT IGNORE INTO plays (id, name, deleted) VALUES (:id, :name, FALSE)"
STUDIO_IF_MISSING = "INSERT IGNORE INTO studios (id, name) VALUES (:id, :name)"

# The order rows and their refunded sale rows in one locking read. FOR UPDATE covers both
# tables: the sale rows are locked exclusively where a shared lock would do, which keeps no one
# waiting longer, as only holders of the order row's lock touch them (and this transaction's
# upserts took every order row's lock already). Every order column read is grouped by, so that
# any sql_mode accepts the query.
ORDER_FACTS = (
    "SELECT o.id, o.paid_at, o.ticket_count, o.release_reason, o.refunded_count, "
    "o.refunded_total, o.status, COUNT(s.ticket_id) AS n, COALESCE(SUM(s.price), 0) AS money "
    "FROM orders o LEFT JOIN sales s ON s.reservation_id = o.id AND s.refunded IS TRUE "
    "WHERE o.id IN :ids GROUP BY o.id, o.paid_at, o.ticket_count, o.release_reason, "
    "o.refunded_count, o.refunded_total, o.status ORDER BY o.id FOR UPDATE")
SET_DERIVED = ("UPDATE orders SET refunded_count = :n, refunded_total = :money, "
               "status = :status WHERE id = :id")


def _remember_show(tx: PlainTx, schedule_id: int, play_id: int, studio_id: int | None,
                   starts_at: datetime | None, play_name: str | None = None) -> None:
    """What a sale says about its show, kept only while the catalogue events have not. Once
    per show and transaction (a batch holds many sales of one show): the statements insert
    only a missing row and never update one, so a second changes nothing."""
    said = tx.memo.setdefault(_remember_show, set())
    if ("show", schedule_id) not in said:
        said.add(("show", schedule_id))
        tx.later(SHOW_IF_MISSING, {"id": schedule_id, "play_id": play_id,
                                   "studio_id": studio_id,
                                   "starts_at": to_db(starts_at) if starts_at else None})
    if play_name is not None and ("play", play_id) not in said:
        said.add(("play", play_id))
        tx.later(PLAY_IF_MISSING, {"id": play_id, "name": play_name})


def _refresh_at_commit(tx: PlainTx, reservation_id: int) -> None:
    """Derive this order's refund figures and status from its facts when the transaction's
    events are all applied (``_refresh``), with every other order they touched."""
    touched = tx.memo.get(_refresh)
    if touched is None:
        touched = tx.memo[_refresh] = set()
        tx.before_commit(lambda: _refresh(tx, touched))
    touched.add(reservation_id)


async def _refresh(tx: PlainTx, reservation_ids: set[int]) -> None:
    """Derive the refund figures and the status of these orders from their facts.

    Called after the events have upserted (and so locked) the order rows: every writer of a
    reservation's sale rows holds that lock first, so the rows cannot change under us. But a
    plain read would see the transaction's REPEATABLE READ snapshot, which may predate a refund
    committed meanwhile (the Subscriber and a replay's catch-up apply many events per
    transaction), and an order row too may be newer than the snapshot (an upsert that changed
    nothing does not make the row this transaction's own): both are read with one locking
    read, which sees the latest committed rows. Written only where something changed."""
    rows = (await tx.execute(ORDER_FACTS, {"ids": tuple(sorted(reservation_ids))})).all()
    for row in rows:
        n, money = row.n, int(row.money)
        status = domain.order_status(paid=row.paid_at is not None,
                                     ticket_count=row.ticket_count, refunded_count=n,
                                     release_reason=row.release_reason).value
        if (row.refunded_count, row.refunded_total, row.status) != (n, money, status):
            tx.later(SET_DERIVED, {"id": row.id, "n": n, "money": money, "status": status})


async def held(event: t.TicketHeld, tx: PlainTx, app: App) -> None:
    tx.later(HELD, {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "play_name": event.play_name, "studio_id": event.studio_id,
        "starts_at": to_db(event.starts_at), "seats": _seats(event.seats), "total": event.total,
        "currency": event.currency, "created_at": to_db(event.created_at),
        "expires_at": to_db(event.expires_at), "status": _new_status()})
    _remember_show(tx, event.schedule_id, event.play_id, event.studio_id, event.starts_at,
                   event.play_name)
    _refresh_at_commit(tx, event.reservation_id)


async def sold(event: t.TicketSold, tx: PlainTx, app: App) -> None:
    paid_at = to_db(event.paid_at)
    tx.later(SOLD, {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "play_name": event.play_name, "studio_id": event.studio_id,
        "starts_at": to_db(event.starts_at), "seats": _seats(event.tickets),
        "total": event.total, "currency": event.currency, "paid_at": paid_at,
        "ticket_count": len(event.tickets),
        "status": _new_status(paid=True, ticket_count=len(event.tickets))})
    if event.tickets:
        tx.later(SOLD_TICKETS, rows=[{
            "reservation_id": event.reservation_id, "ticket_id": ticket.ticket_id,
            "schedule_id": event.schedule_id, "play_id": event.play_id,
            "studio_id": event.studio_id, "seat_row": ticket.row, "seat_col": ticket.col,
            "price": ticket.price, "ticket_type": ticket.type, "sold_at": paid_at,
            "refunded": False,
        } for ticket in sorted(event.tickets, key=lambda x: x.ticket_id)])
    _remember_show(tx, event.schedule_id, event.play_id, event.studio_id, event.starts_at,
                   event.play_name)
    _refresh_at_commit(tx, event.reservation_id)


async def released(event: t.TicketReleased, tx: PlainTx, app: App) -> None:
    tx.later(RELEASED, {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "seats": _seats(event.seats),
        "total": sum(s.price for s in event.seats), "currency": app.settings.currency,
        "released_at": to_db(event.released_at), "reason": event.reason,
        "status": _new_status(release_reason=event.reason)})
    _refresh_at_commit(tx, event.reservation_id)


async def refunded(event: t.TicketRefunded, tx: PlainTx, app: App) -> None:
    values = {
        "id": event.reservation_id, "user_id": event.user_id, "schedule_id": event.schedule_id,
        "play_id": event.play_id, "studio_id": event.studio_id, "currency": event.currency,
        "refunded_at": to_db(event.refunded_at), "ticket_id": event.ticket_id,
        "row": event.row, "col": event.col, "price": event.price, "ticket_type": event.ticket_type,
        "status": _new_status()}
    tx.later(REFUNDED, values)
    tx.later(REFUNDED_TICKET, values)
    _remember_show(tx, event.schedule_id, event.play_id, event.studio_id, None)
    _refresh_at_commit(tx, event.reservation_id)


# -- reading orders ---------------------------------------------------------------------------

ORDER_COLUMNS = (
    orders,
    func.coalesce(orders.c.starts_at, shows.c.starts_at).label("show_starts_at"),
    func.coalesce(orders.c.play_name, plays.c.name).label("known_play_name"),
)
ORDER_SOURCE = orders.outerjoin(shows, shows.c.id == orders.c.schedule_id) \
    .outerjoin(plays, plays.c.id == orders.c.play_id)


def to_order(row) -> c.Order:
    return c.Order(
        id=row.id, user_id=row.user_id, schedule_id=row.schedule_id, play_id=row.play_id,
        play_name=row.known_play_name, starts_at=as_utc(row.show_starts_at),
        seats=row.seats or [], total=row.total or 0, currency=row.currency,
        status=c.OrderStatus(row.status), created_at=as_utc(row.created_at),
        paid_at=as_utc(row.paid_at), refunded_total=row.refunded_total)
