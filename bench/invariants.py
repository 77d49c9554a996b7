"""The invariants every benchmark run must keep (ARCHITECTURE.md), checked after the run.

Audit code, so it reads the services' databases directly (read-only) and runs order_svc's
reconcile tool; services themselves never do this.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from messages.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


async def _rows(settings: Settings, service: str, sql: str, params: dict | None = None):
    engine = create_async_engine(settings.database_url(service))
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params or {})).all()
    finally:
        await engine.dispose()


async def check(url: str, state: dict, settle_seconds: float = 15) -> list[str]:
    """Every broken invariant, described; an empty list when all hold."""
    settings = Settings()
    failures: list[str] = []
    schedule = {"s": state["schedule_id"]}

    doubles = await _rows(settings, "ticket", (
        "SELECT seat_row, seat_col, COUNT(*) FROM tickets WHERE schedule_id = :s "
        "AND status = 'sold' GROUP BY seat_row, seat_col HAVING COUNT(*) > 1"), schedule)
    if doubles:
        failures.append(f"seats sold twice: {[tuple(r) for r in doubles]}")
    mismatched = await _rows(settings, "ticket", (
        "SELECT s.seat_row, s.seat_col FROM seats s LEFT JOIN tickets t "
        "ON t.schedule_id = s.schedule_id AND t.seat_row = s.seat_row "
        "AND t.seat_col = s.seat_col AND t.status = 'sold' "
        "WHERE s.schedule_id = :s AND (s.status = 'sold') <> (t.id IS NOT NULL)"), schedule)
    if mismatched:
        failures.append(f"seat status and sold tickets disagree: {len(mismatched)} seats")

    overdue = await _rows(settings, "ticket", (
        "SELECT COUNT(*) FROM reservations WHERE status = 'held' "
        "AND expires_at < UTC_TIMESTAMP(6) - INTERVAL :grace SECOND"),
        {"grace": int(settings.sweep_interval_seconds) + 2})
    if overdue[0][0]:
        failures.append(f"{overdue[0][0]} holds outlived their expiry by more than a sweep")

    # order_svc lags writes a little: give it time, then compare with the ticket ledger.
    deadline = asyncio.get_running_loop().time() + settle_seconds
    while True:
        tool = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "order_svc.tools", "reconcile", cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await tool.communicate()
        if tool.returncode == 0 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(1)
    if tool.returncode != 0:
        failures.append("box office differs from the ticket ledger:\n"
                        + output.decode(errors="replace").strip()[-2000:])
    return failures
