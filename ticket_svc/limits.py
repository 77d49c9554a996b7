"""Tickets per account (issue 20.3): a show may cap the seats one account holds or has bought
(``max_tickets_per_customer``; holds, payments and clerk sales on the account all count).

Decided in the hold's own transaction, by the database: the hold raises the account's count
for the show (``account_tickets``) with one upsert, which takes that row's lock, and reads it
back; past the cap the hold's transaction is rolled back, count and all. So two holds of one
account, in any number of ticket_svc processes, count one after the other and cannot pass the
cap together. A waiting-list offer counts like a hold; joining the line counts nothing but is
refused when the account has no room for what it asks. A hold that ends unpaid (expired,
cancelled, its show cancelled) and a refunded ticket give their seats back. Shows without a
cap never touch the table.
"""

from __future__ import annotations

from sqlalchemy import text

from messages import errors
from messages.db import PlainTx, Tx

# The upsert locks the account's row (an X lock at once: no shared lock to upgrade, so two
# holds of one account wait for each other instead of deadlocking) and counts the seats in.
_COUNT_IN = text(
    "INSERT INTO account_tickets (schedule_id, user_id, tickets) VALUES (:sid, :uid, :n) "
    "ON DUPLICATE KEY UPDATE tickets = tickets + VALUES(tickets)")
# Read under the lock: this transaction's own row version, the latest count plus ours.
_COUNTED = text(
    "SELECT tickets FROM account_tickets WHERE schedule_id = :sid AND user_id = :uid")
_GIVE_BACK = text(
    "UPDATE account_tickets SET tickets = GREATEST(CAST(tickets AS SIGNED) - :n, 0) "
    "WHERE schedule_id = :sid AND user_id = :uid")


def too_many(held_or_bought: int, wanted: int, cap: int) -> bool:
    """The rule: an account's seats of a show, with the ones it asks for, stay within the
    cap."""
    return held_or_bought + wanted > cap


async def count_in(tx: PlainTx, schedule_id: int, user_id: int, seats: int, cap: int) -> None:
    """Count a hold's seats toward the account's cap, or refuse it (409 ``limit_reached``)."""
    params = {"sid": schedule_id, "uid": user_id, "n": seats}
    tx.later(_COUNT_IN, params)
    total = (await tx.execute(_COUNTED, params)).scalar()
    before = int(total) - seats
    if too_many(before, seats, cap):
        raise limit_reached(cap, before, seats)


def limit_reached(cap: int, before: int, seats: int, field: str = "seats") -> errors.LimitReached:
    left = max(cap - before, 0)
    return errors.LimitReached(
        f"at most {cap} tickets per account for this show; this account may take {left} more",
        details=[errors.invalid(["body", field], "limit", f"{seats} asked, {left} left of {cap}",
                                asked=seats, left=left, cap=cap)])


async def check_room(tx: Tx, schedule_id: int, user_id: int, seats: int, cap: int) -> None:
    """409 ``limit_reached`` when the account could not take ``seats`` more of the show now
    (joining a waiting list: nothing is counted until seats are offered)."""
    before = (await tx.execute(_COUNTED, {"sid": schedule_id, "uid": user_id})).scalar() or 0
    if too_many(int(before), seats, cap):
        raise limit_reached(cap, int(before), seats, "quantity")


async def count_in_offer(tx: Tx, schedule_id: int, user_id: int, seats: int, cap: int) -> bool:
    """A waiting-list offer's seats, counted in as a hold's are (under the account's row
    lock); False, with nothing counted, when they would pass the cap."""
    params = {"sid": schedule_id, "uid": user_id, "n": seats}
    await tx.execute(_COUNT_IN, params)
    before = int((await tx.execute(_COUNTED, params)).scalar()) - seats
    if too_many(before, seats, cap):
        await tx.execute(_GIVE_BACK, params)
        return False
    return True


async def give_back(tx: Tx, schedule_id: int, user_id: int, seats: int) -> None:
    """A hold ended unpaid or a ticket was refunded: its seats no longer count. (On a show
    without a cap this changes no row; in a plain transaction it travels with the next
    statement.)"""
    params = {"sid": schedule_id, "uid": user_id, "n": seats}
    if isinstance(tx, PlainTx):
        tx.later(_GIVE_BACK, params)
    else:
        await tx.execute(_GIVE_BACK, params)
