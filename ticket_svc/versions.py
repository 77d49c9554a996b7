"""Each show's seat-map version (``seat_versions``): a counter raised in the same transaction
as every change of the show's seats (a hold, a sale, a release, a refund, an edit of the show),
carried in the ``ticket.*`` event of that change and in the seat snapshot
(``ticket.seat_snapshot``). The gateway builds its seat maps from one snapshot and then the
events in version order; a missing version tells it that it missed something.

The counter is raised LAST in each transaction (after its seats are written): no
transaction waits for a seat while holding its row lock, so it adds no deadlock, only an order
between the commits of one show's changes. That order is the price: one show's changes commit
one at a time. So on the hot paths (``raise_at_commit``: a hold, a payment, a refund, an
expiry) the counter is raised in the COMMIT's own round trip, and the server writes the new
version into the events and the recorded answer there (``PlainTx.json_set``,
``PlainTx.set_in_event``): the lock is held for the few statements of that round trip, not
for a round trip more and the Python between (measured: the lock queue set a sell-out's pace).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text

from messages.contracts.base import Event
from messages.db import PlainTx

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


# Raised in the COMMIT's round trip; a show without its row (none since the migration's
# backfill) gets one. The new value is left in a session variable for the events, the recorded
# answer and the read after the COMMIT.
RAISE_LAST = ("INSERT INTO seat_versions (schedule_id, version) VALUES ({sid}, {n}) "
              "ON DUPLICATE KEY UPDATE version = version + {n}",
              "SELECT version INTO @seats_version FROM seat_versions WHERE schedule_id = {sid}")
VARIABLE = "@seats_version"
FIELD = "seats_version"


class Raised:
    """A show's seat-map version raised by ``n`` in a transaction: known at once
    (``raise_version``), or only once committed (``raise_at_commit``). ``emit`` writes an
    event with its version either way; ``value`` is the new version, after the commit."""

    __slots__ = ("n", "_known", "_read", "_tx")

    def __init__(self, tx: Any, n: int, known: int | None = None) -> None:
        self.n, self._known, self._tx = n, known, tx
        self._read = None if known is not None else tx.read_after_commit(f"SELECT {VARIABLE}")

    @property
    def value(self) -> int:
        if self._known is None:
            rows = self._read.rows
            if not rows or rows[0][0] is None:
                raise RuntimeError("the seat-map version is read after the commit")
            self._known = int(rows[0][0])
        return self._known

    def emit(self, event: Event, k: int | None = None) -> None:
        """Emit ``event`` with the ``k``-th of the ``n`` new versions (the last by default)."""
        back = self.n - (k if k is not None else self.n)
        if self._known is not None:
            setattr(event, FIELD, self._known - back)
            self._tx.emit(event)
        else:
            self._tx.set_in_event(self._tx.emit(event), f"$.data.{FIELD}",
                                  f"{VARIABLE} - {back}" if back else VARIABLE)

    def into(self, answer: str) -> str:
        """An answer (JSON text) recorded in the transaction, an Idempotency-Key's, with the
        new version: set by the server (a ``Sql`` expression) when known only at the commit."""
        if self._known is not None:
            return orjson.dumps(orjson.loads(answer) | {FIELD: self._known}).decode()
        return self._tx.json_set(answer, f"$.{FIELD}", VARIABLE)


async def raise_at_commit(tx: Any, schedule_id: int, n: int = 1) -> Raised:
    """Raise the show's version by ``n`` as late as can be: queued as the transaction's last
    statements (so call it after the seats are written), in the COMMIT's round trip, on a plain
    transaction; at once on another, or for a second raise in one transaction (the session
    variable holds one show's one raise)."""
    if isinstance(tx, PlainTx) and not tx.memo.get(VARIABLE):
        tx.memo[VARIABLE] = True
        for statement in RAISE_LAST:  # one ``later`` a statement: each has its result
            tx.later(statement.format(sid=int(schedule_id), n=int(n)))
        return Raised(tx, n)
    return Raised(tx, n, await raise_version(tx, schedule_id, n))
