"""Each show's seat-map version (``seat_versions``): a counter raised in the same transaction
as every change of the show's seats (a hold, a sale, a release, a refund, an edit of the show),
carried in the ``ticket.*`` event of that change and in the seat snapshot
(``ticket.seat_snapshot``). The gateway builds its seat maps from one snapshot and then the
events in version order; a missing version tells it that it missed something.

The counter is raised LAST in each transaction (after its seats are written): the row lock
it takes is then held only for the commit, and no transaction waits for a seat while holding
it, so it adds no deadlock, only an order between the commits of one show's changes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

RAISE = text("UPDATE seat_versions SET version = version + :n WHERE schedule_id = :sid")
CURRENT = text("SELECT version FROM seat_versions WHERE schedule_id = :sid")
CREATE = text("INSERT IGNORE INTO seat_versions (schedule_id, version) VALUES (:sid, 0)")


async def raise_version(tx: Any, schedule_id: int, n: int = 1) -> int:
    """Raise the show's version by ``n`` (one per event of this transaction) and return the
    new value: the events get ``new - n + 1 … new``. Within the transaction our own update is
    what the read sees."""
    params = {"sid": schedule_id, "n": n}
    later = getattr(tx, "later", None)
    if later is not None:  # a PlainTx: the update travels with the read
        later(RAISE, params)
    else:
        await tx.execute(RAISE, params)
    version = (await tx.execute(CURRENT, {"sid": schedule_id})).scalar()
    if version is None:  # a show stored before the table existed and not backfilled
        await tx.execute(CREATE, {"sid": schedule_id})
        await tx.execute(RAISE, params)
        version = (await tx.execute(CURRENT, {"sid": schedule_id})).scalar()
    return int(version)


async def create(tx: Any, schedule_id: int) -> None:
    await tx.execute(CREATE, {"sid": schedule_id})
