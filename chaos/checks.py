"""The invariants, read straight from ticket_svc's and order_svc's databases (read-only) and
through the API, after a fault:

- no seat sold twice (one sold ticket per seat; the seat row agrees with its ticket);
- no paid sale lost (every 200 from pay still stands as sold, or was refunded by the driver);
- every refund that answered 200 stands;
- every ticket has its order, with the same status as ticket_svc's reservation, and its sale
  row in the box office (also ``GET /orders/{id}`` as the owner, for a sample);
- the box office equals ticket_svc's ledger (``order_svc.tools.reconcile``'s comparison);
- no hold outlives its expiry by more than a sweep interval (and no seat stays held by a
  reservation that is no longer a hold).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from chaos.rush import Api, Customer, Record, patiently
from messages.settings import Settings
from order_svc import tools

HOLD_GRACE = 1.0  # seconds beyond a sweep interval for the sweep's own transaction


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)
    lost: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _in(statement: str, *names: str):
    return text(statement).bindparams(*(bindparam(n, expanding=True) for n in names))


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


ORDER_STATUS = {"held": "held", "expired": "expired", "cancelled": "cancelled"}


def expected_order_status(reservation_status: str, sold: int, refunded: int) -> str:
    if reservation_status != "paid":
        return ORDER_STATUS.get(reservation_status, reservation_status)
    if refunded == 0:
        return "paid"
    return "refunded" if sold == 0 else "partially_refunded"


async def _ticket_facts(settings: Settings, schedule_ids: list[int]):
    engine = create_async_engine(settings.database_url("ticket"))
    try:
        async with engine.connect() as conn:
            tickets = (await conn.execute(_in(
                "SELECT id, reservation_id, schedule_id, seat_row, seat_col, status FROM tickets "
                "WHERE schedule_id IN :ids", "ids"), {"ids": schedule_ids})).all()
            seats = (await conn.execute(_in(
                "SELECT schedule_id, seat_row, seat_col, status, reservation_id FROM seats "
                "WHERE schedule_id IN :ids AND status IN ('sold', 'held')", "ids"),
                {"ids": schedule_ids})).all()
            reservations = (await conn.execute(_in(
                "SELECT id, schedule_id, user_id, status, expires_at FROM reservations "
                "WHERE schedule_id IN :ids", "ids"), {"ids": schedule_ids})).all()
            now = (await conn.execute(text("SELECT UTC_TIMESTAMP(6)"))).scalar()
    finally:
        await engine.dispose()
    return tickets, seats, reservations, _utc(now)


async def _order_facts(settings: Settings, schedule_ids: list[int]):
    engine = create_async_engine(settings.database_url("order"))
    try:
        async with engine.connect() as conn:
            orders = {r.id: r for r in (await conn.execute(_in(
                "SELECT id, status, user_id FROM orders WHERE schedule_id IN :ids", "ids"),
                {"ids": schedule_ids})).all()}
            sales = {(r.reservation_id, r.ticket_id): r for r in (await conn.execute(_in(
                "SELECT reservation_id, ticket_id, refunded, seat_row, seat_col FROM sales "
                "WHERE schedule_id IN :ids", "ids"), {"ids": schedule_ids})).all()}
    finally:
        await engine.dispose()
    return orders, sales


def seats_and_sales(record: Record, tickets, seats, reservations, now: datetime,
                    sweep_seconds: float) -> Verdict:
    """Everything that ticket_svc's own tables must show, given what the driver saw."""
    verdict = Verdict()
    sold: dict[tuple[int, int, int], list[int]] = {}
    for t in tickets:
        if t.status == "sold":
            sold.setdefault((t.schedule_id, t.seat_row, t.seat_col), []).append(t.id)
    for seat, ids in sold.items():
        if len(ids) > 1:
            verdict.failures.append(f"seat {seat} sold {len(ids)} times: tickets {ids}")
    by_seat = {(s.schedule_id, s.seat_row, s.seat_col): s for s in seats}
    ticket_by_id = {t.id: t for t in tickets}
    for seat, ids in sold.items():
        row = by_seat.get(seat)
        ticket = ticket_by_id[ids[0]]
        if row is None or row.status != "sold" or row.reservation_id != ticket.reservation_id:
            verdict.failures.append(
                f"seat {seat} has sold ticket {ids[0]} (reservation {ticket.reservation_id}) "
                f"but the seat row says {row.status if row else 'available'}"
                f"/{row.reservation_id if row else None}")
    for seat, row in by_seat.items():
        if row.status == "sold" and seat not in sold:
            verdict.failures.append(f"seat {seat} is marked sold (reservation "
                                    f"{row.reservation_id}) without a sold ticket")
    # no paid sale lost
    for sale in record.paid.values():
        if not sale.ticket_ids:
            verdict.failures.append(f"pay of reservation {sale.reservation_id} answered 200 "
                                    "without tickets")
            verdict.lost += 1
        for ticket_id in sale.ticket_ids:
            t = ticket_by_id.get(ticket_id)
            if t is None:
                verdict.lost += 1
                verdict.failures.append(f"LOST: ticket {ticket_id} of paid reservation "
                                        f"{sale.reservation_id} does not exist")
            elif t.status == "refunded" and ticket_id not in record.refund_sent:
                verdict.lost += 1
                verdict.failures.append(f"LOST: ticket {ticket_id} of paid reservation "
                                        f"{sale.reservation_id} refunded by nobody")
            elif t.status != "sold" and t.status != "refunded":
                verdict.lost += 1
                verdict.failures.append(f"LOST: ticket {ticket_id} is {t.status}")
    for ticket_id in record.refunded:
        t = ticket_by_id.get(ticket_id)
        if t is None or t.status != "refunded":
            verdict.lost += 1
            verdict.failures.append(f"LOST: refund of ticket {ticket_id} answered 200 but it is "
                                    f"{t.status if t else 'missing'}")
    status_of = {r.id: r.status for r in reservations}
    for sale in record.paid.values():
        if status_of.get(sale.reservation_id) != "paid":
            verdict.lost += 1
            verdict.failures.append(f"LOST: reservation {sale.reservation_id} paid (200) but "
                                    f"is {status_of.get(sale.reservation_id)}")
    # no hold outlives its expiry by more than a sweep interval
    limit = sweep_seconds + HOLD_GRACE
    overdue = [(r.id, (now - _utc(r.expires_at)).total_seconds()) for r in reservations
               if r.status == "held" and (now - _utc(r.expires_at)).total_seconds() > limit]
    if overdue:
        verdict.failures.append(f"{len(overdue)} hold(s) outlive their expiry by more than "
                                f"{limit:.0f}s, e.g. {overdue[:5]}")
    for seat, row in by_seat.items():
        if row.status == "held" and status_of.get(row.reservation_id) != "held":
            verdict.failures.append(f"seat {seat} held by reservation {row.reservation_id}, "
                                    f"which is {status_of.get(row.reservation_id)}")
    held = [r for r in reservations if r.status == "held"]
    verdict.notes.append(f"{len(tickets)} tickets, {len(reservations)} reservations, "
                         f"{len(held)} holds still open")
    return verdict


def orders_match(tickets, reservations, orders, sales) -> list[str]:
    found = []
    counts: dict[int, list[int]] = {}
    for t in tickets:
        sold_refunded = counts.setdefault(t.reservation_id, [0, 0])
        sold_refunded[t.status == "refunded"] += 1
        sale = sales.get((t.reservation_id, t.id))
        if sale is None:
            found.append(f"ticket {t.id} ({t.status}) has no sale row in the box office")
        elif bool(sale.refunded) != (t.status == "refunded"):
            found.append(f"ticket {t.id} is {t.status} but its sale row says "
                         f"refunded={bool(sale.refunded)}")
    ticket_ids = {(t.reservation_id, t.id) for t in tickets}
    found += [f"sale row {key} has no ticket" for key in sales if key not in ticket_ids]
    for r in reservations:
        order = orders.get(r.id)
        sold, refunded = counts.get(r.id, [0, 0])
        want = expected_order_status(r.status, sold, refunded)
        if order is None:
            if r.status == "paid":
                found.append(f"paid reservation {r.id} has no order")
            elif r.status != "held":  # a hold's order may lag; its end is checked
                found.append(f"{r.status} reservation {r.id} has no order")
        elif order.status != want:
            found.append(f"order {r.id} is {order.status}; ticket_svc says {want} "
                         f"(reservation {r.status}, {sold} sold, {refunded} refunded)")
    return found


async def reconcile(settings: Settings, schedule_ids: list[int], wait: float) -> list[str]:
    """order_svc's reconcile comparison, for these shows only (others' tests may run in the
    same namespace)."""
    deadline = time.monotonic() + wait
    ours = set(schedule_ids)
    while True:
        ledger = {k: v for k, v in (await tools.ticket_ledger(settings)).items() if k in ours}
        box = {k: v for k, v in (await tools.box_office_by_show(settings)).items() if k in ours}
        found = tools.differences(box, ledger)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def orders_through_api(api: Api, record: Record, people: list[Customer],
                             sample: int = 25) -> list[str]:
    tokens = {c.user_id: c.token for c in people}
    found = []
    for sale in list(record.paid.values())[:sample]:
        status, order = await patiently(api, "check", "GET", f"/orders/{sale.reservation_id}",
                                        token=tokens.get(sale.user_id))
        if status != 200:
            found.append(f"GET /orders/{sale.reservation_id} as its owner: {status} {order}")
        elif order["status"] not in ("paid", "partially_refunded", "refunded"):
            found.append(f"order {sale.reservation_id} of a paid reservation is "
                         f"{order['status']}")
    return found


async def check(settings: Settings, api: Api, record: Record, people: list[Customer],
                schedule_ids: list[int], wait: float = 15.0, tries: int = 3) -> Verdict:
    """Every invariant; order_svc may lag, so its comparisons are retried for ``wait`` s.
    A check that cannot read (the shared server out of connections, say) is tried again."""
    for attempt in range(tries):
        try:
            return await _check(settings, api, record, people, schedule_ids, wait)
        except Exception as exc:  # noqa: BLE001 - report it if it persists
            if attempt == tries - 1:
                return Verdict(failures=[f"the checks could not run: "
                                         f"{type(exc).__name__}: {exc}"])
            await asyncio.sleep(3)
    raise AssertionError("unreachable")


async def _check(settings: Settings, api: Api, record: Record, people: list[Customer],
                 schedule_ids: list[int], wait: float) -> Verdict:
    tickets, seats, reservations, now = await _ticket_facts(settings, schedule_ids)
    verdict = seats_and_sales(record, tickets, seats, reservations, now,
                              settings.sweep_interval_seconds)
    deadline = time.monotonic() + wait
    while True:
        # holds may end meanwhile: read both sides again each round
        tickets, _, reservations, _ = await _ticket_facts(settings, schedule_ids)
        orders, sales = await _order_facts(settings, schedule_ids)
        mismatched = orders_match(tickets, reservations, orders, sales)
        if not mismatched or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    verdict.failures += mismatched
    verdict.failures += await reconcile(settings, schedule_ids, wait=10)
    verdict.failures += await orders_through_api(api, record, people)
    return verdict
