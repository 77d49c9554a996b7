"""The invariants every benchmark run must keep (ARCHITECTURE.md), checked after the run.

Audit code, so it reads the services' databases directly (read-only) and uses order_svc's
reconcile comparison; services themselves never do this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from messages.settings import Settings
from order_svc import tools


async def _rows(settings: Settings, service: str, sql: str, params: dict | None = None):
    engine = create_async_engine(settings.database_url(service))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params or {})).all()
    finally:
        await engine.dispose()


# ticket_svc's own invariants: each a query of its database whose rows break it (``:s`` the
# show of the run, ``:grace`` a sweep and two seconds), and what to say about those rows.
TICKET_RULES: tuple[tuple[str, Callable[[list], str]], ...] = (
    ("SELECT seat_row, seat_col, COUNT(*) FROM tickets WHERE schedule_id = :s "
     "AND status = 'sold' GROUP BY seat_row, seat_col HAVING COUNT(*) > 1",
     lambda rows: f"seats sold twice: {[tuple(r) for r in rows]}"),
    ("SELECT s.seat_row, s.seat_col FROM seats s LEFT JOIN tickets t "
     "ON t.schedule_id = s.schedule_id AND t.seat_row = s.seat_row "
     "AND t.seat_col = s.seat_col AND t.status = 'sold' "
     "WHERE s.schedule_id = :s AND (s.status = 'sold') <> (t.id IS NOT NULL)",
     lambda rows: f"seat status and sold tickets disagree: {len(rows)} seats"),
    ("SELECT id FROM reservations WHERE status = 'held' "
     "AND expires_at < UTC_TIMESTAMP(6) - INTERVAL :grace SECOND",
     lambda rows: f"{len(rows)} holds outlived their expiry by more than a sweep"),
)


async def check(url: str, state: dict, settle_seconds: float = 15) -> list[str]:
    """Every broken invariant, described; an empty list when all hold."""
    settings = Settings()
    failures: list[str] = []

    params = {"s": state["schedule_id"], "grace": int(settings.sweep_interval_seconds) + 2}
    for sql, broken in TICKET_RULES:
        rows = await _rows(settings, "ticket", sql, params)
        if rows:
            failures.append(broken(rows))

    # order_svc lags writes a little: give it time to agree with ticket_svc.
    deadline = asyncio.get_running_loop().time() + settle_seconds
    while True:
        late = await _orders_disagree(settings, state["schedule_id"])
        if not late or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    failures += late
    return failures


async def _orders_disagree(settings: Settings, schedule_id: int) -> list[str]:
    """Every sold ticket has its order's sale row (refunded alike), and the show's box office
    equals ticket_svc's ledger (order_svc's reconcile comparison, for this show only: other
    shows in the namespace may belong to someone else's run)."""
    found = []
    tickets = {(r[0], r[1]): bool(r[2]) for r in await _rows(settings, "ticket", (
        "SELECT reservation_id, id, status = 'refunded' FROM tickets WHERE schedule_id = :s"),
        {"s": schedule_id})}
    sales = {(r[0], r[1]): bool(r[2]) for r in await _rows(settings, "order", (
        "SELECT reservation_id, ticket_id, refunded FROM sales WHERE schedule_id = :s"),
        {"s": schedule_id})}
    if missing := tickets.keys() - sales.keys():
        found.append(f"{len(missing)} sold tickets have no order, e.g. {sorted(missing)[:3]}")
    if extra := sales.keys() - tickets.keys():
        found.append(f"{len(extra)} orders' sales are no ticket, e.g. {sorted(extra)[:3]}")
    if wrong := [k for k in tickets.keys() & sales.keys() if tickets[k] != sales[k]]:
        found.append(f"{len(wrong)} tickets refunded on one side only, e.g. {wrong[:3]}")
    ledger = {k: v for k, v in (await tools.ticket_ledger(settings)).items() if k == schedule_id}
    box = {k: v for k, v in (await tools.box_office_by_show(settings)).items()
           if k == schedule_id}
    found += tools.differences(box, ledger)
    return found
