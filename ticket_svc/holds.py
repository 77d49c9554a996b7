"""The hold: all of its seats or none, decided by the database.

A hold is first checked against one plain read shared by the holds of its show that arrive
together (``contention.SeatReads``: most holds of an on-sale rush are refused there), then
waits its turn behind holds of this process that want a same seat (``contention.SeatTurns``),
then claims every seat in one transaction: the show's row in share mode (an edit's sales check
is before or after the whole hold), on a show with a ticket cap the account's count
(``limits``), the reservation, and one conditional UPDATE over every
requested seat whose row count must match. Any number of ticket_svc processes can run side by
side. A hold of a show not known here yet asks play_svc for it (``inventory.fetch``) and one
that finds an edit under way waits for it (``inventory.catch_up_with_edit``); a deadlock
victim is run again (``messages.db.retry_deadlocks``). A new hold goes to the delay queue
(``expiry.enqueue``).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text

from messages import errors
from messages.contracts import ticket as c
from messages.contracts import user as u
from messages.contracts.base import Actor, Caller, utcnow
from messages.db import as_utc, retry_deadlocks, to_db
from messages.service import App
from ticket_svc import domain, expiry, inventory, limits, queries, versions
from ticket_svc.idempotency import Key, rolled_back

ATTEMPTS = 4  # a show fetched, an edit waited for, then the hold, with room for one more
CUSTOMER_CHECK_SECONDS = 2.0  # well inside the hold's own deadline


class _UnknownShow(Exception):
    pass


class _BeingEdited(Exception):
    def __init__(self, version: int) -> None:
        self.version = version


class _NotAllAvailable(Exception):
    pass


async def hold(app: App, caller: Caller, schedule_id: int, buyer: int, customer_id: int | None,
               keys: list[tuple[int, int]], idem: Key | None,
               types: dict[tuple[int, int], str] | None = None) -> c.Reservation:
    if customer_id is not None:
        await check_customer(app, caller, customer_id)
    await refuse_early(app, schedule_id, keys)
    async with app.state.turns.turn(schedule_id, keys) as turn:
        fetched = False
        for _ in range(ATTEMPTS):
            try:
                reservation = await retry_deadlocks(
                    lambda: _claim_seats(app, schedule_id, buyer, keys, idem, types or {},
                                     caller.actor() if customer_id is not None else None),
                    tries=ATTEMPTS, before_retry=rolled_back(idem))
                turn.won = True
                break
            except _UnknownShow:
                if fetched:
                    raise errors.NotFound("no such show") from None
                await inventory.fetch(app, schedule_id)  # its event is still on its way
                fetched = True
            except _BeingEdited as edit:
                await inventory.catch_up_with_edit(app, schedule_id, edit.version)
            except _NotAllAvailable:
                raise domain.seats_unavailable(
                    await _unavailable_details(app, schedule_id, keys)) from None
        else:
            raise errors.Conflict("could not hold the seats; try again", retry_after=1)
    expiry.enqueue(app, reservation.id)
    return reservation


async def check_customer(app: App, caller: Caller, customer_id: int) -> None:
    """A box-office sale is made on an existing, enabled account. user_svc decides, with one
    RPC, made only by holds that name a ``customer_id`` (a clerk's): the others pay nothing.
    Checked when the hold is made, like the seats; an account disabled later keeps what it
    bought."""
    state = u.AccountState.model_validate(await app.rpc.ask(
        u.AccountStatus(id=customer_id), caller, timeout=CUSTOMER_CHECK_SECONDS))
    if not state.active:
        why = "is disabled" if state.exists else "names no account"
        raise errors.ValidationFailed(
            f"customer_id {why}; a sale needs an existing, enabled account",
            details=[errors.invalid(["body", "customer_id"], "customer_inactive",
                                    f"customer_id {why}")])


async def refuse_early(app: App, schedule_id: int, keys: list[tuple[int, int]]) -> None:
    """Most holds of an on-sale rush are refused: refuse them with a plain read and no
    transaction, one read shared by the holds of a show that arrive together. Passing here
    proves nothing; the hold's transaction decides."""
    show, seats = await app.state.seat_reads.look(app, schedule_id, keys)
    if show is None:
        return  # unknown here yet: the transaction fetches the show
    domain.check_sales_open(show[0], as_utc(show[1]), utcnow(),
                            app.settings.sales_cutoff_minutes)
    taken = domain.seats_not_available(seats, keys)
    if taken:
        raise domain.seats_unavailable(taken)


async def _claim_seats(app: App, schedule_id: int, buyer: int, keys: list[tuple[int, int]],
                       idem: Key | None, types: dict[tuple[int, int], str],
                       actor: Actor | None = None) -> c.Reservation:
    """The hold's one transaction: read the show, write the reservation, claim its seats (all
    or nothing) and its event."""
    settings = app.settings
    now = utcnow()
    async with app.db.plain_transaction(begin_later=True) as tx:
        # The show's row in share mode, so that an edit's sales check (begin_show_edit) is
        # before or after this whole hold; then the show and the requested seats as they are
        # now, in one read (BEGIN and the lock travel with it): a hold that lost a race since
        # the early read ends here, before any write.
        tx.later(queries.SHOW_SHARED, {"id": schedule_id})
        rows = (await tx.execute(text(
            "SELECT sc.id, sc.play_id, sc.studio_id, sc.play_name, sc.starts_at, sc.price, "
            "sc.status, sc.version, sc.edit_version, sc.no_single_gaps, "
            "sc.max_tickets_per_customer, sc.prices, sc.ticket_types, "
            "s.seat_row, s.seat_col, s.zone, "
            "s.status AS seat_status FROM schedules sc "
            "LEFT JOIN seats s ON s.schedule_id = sc.id AND " + queries.seats_sql(keys)
            + " WHERE sc.id = :id"), {"id": schedule_id})).all()
        if not rows:
            raise _UnknownShow
        show = rows[0]
        if show.version < show.edit_version:  # an edit passed its sales check: wait for it
            raise _BeingEdited(show.edit_version)
        domain.check_sales_open(show.status, as_utc(show.starts_at), now,
                                settings.sales_cutoff_minutes)
        taken = domain.seats_not_available(
            {(r.seat_row, r.seat_col): r.seat_status for r in rows}, keys)
        if taken:
            raise domain.seats_unavailable(taken)
        offered = domain.ticket_types(show.ticket_types)
        unknown = domain.unknown_types(types, offered)
        if unknown:
            raise errors.ValidationFailed("a ticket type asked for is not offered", unknown)
        if show.max_tickets_per_customer is not None:  # counted before any seat is claimed
            await limits.count_in(tx, show.id, buyer, len(keys), show.max_tickets_per_customer)
        # Each seat at its zone's price (the show's when it has none), as the seat map says.
        prices = domain.zone_prices(show.prices)
        zones = {(r.seat_row, r.seat_col): r.zone for r in rows}
        # Then at its ticket type's share, or amount (issue 20.2).
        seats = [{"row": r, "col": col, "price": domain.type_price(
                      domain.seat_price(zones.get((r, col)), prices, show.price),
                      offered.get(types[(r, col)]) if (r, col) in types else None)}
                 | ({"type": types[(r, col)]} if (r, col) in types else {})
                 for r, col in keys]
        total = sum(s["price"] for s in seats)
        expires_at = domain.hold_expires_at(now, settings.hold_seconds)
        # The reservation, its seats and its id in one round trip. All or nothing: one
        # conditional UPDATE over every requested seat, checked by its row count.
        tx.later(queries.INSERT_RESERVATION, {
            "schedule_id": show.id, "user_id": buyer, "seats": orjson.dumps(seats).decode(),
            "total": total, "currency": settings.currency,
            "expires_at": to_db(expires_at), "created_at": to_db(now)})
        claimed = tx.later(text(
            f"UPDATE seats SET status = '{domain.HELD}', reservation_id = LAST_INSERT_ID() "
            "WHERE schedule_id = :sid AND " + queries.seats_sql(keys)
            + " AND status = 'available'"), {"sid": show.id})
        if show.no_single_gaps:  # decided with the claimed seats and their neighbours locked
            await tx.flush()
            if claimed.rowcount != len(keys):
                raise _NotAllAvailable
            await _refuse_single_gaps(tx, show.id, keys)
        reservation_id = (await tx.execute("SELECT LAST_INSERT_ID()")).scalar()
        if claimed.rowcount != len(keys):
            raise _NotAllAvailable
        # The show's seat-map version, raised last, with the COMMIT (``ticket_svc.versions``).
        raised = await versions.raise_at_commit(tx, show.id)
        reservation = c.Reservation(
            id=reservation_id, schedule_id=show.id, user_id=buyer,
            seats=[c.PricedSeat(**s) for s in seats], total=total,
            currency=settings.currency, status=c.ReservationStatus.held,
            expires_at=expires_at, created_at=now)
        raised.emit(c.TicketHeld(
            reservation_id=reservation_id, user_id=buyer, schedule_id=show.id,
            play_id=show.play_id, play_name=show.play_name, studio_id=show.studio_id,
            starts_at=as_utc(show.starts_at), seats=reservation.seats, total=total,
            currency=settings.currency, expires_at=expires_at, created_at=now, actor=actor))
        if idem is not None:
            idem.record(tx, True, reservation.model_dump(mode="json"), raised.into)
    return reservation.model_copy(update={"seats_version": raised.value})


async def _refuse_single_gaps(tx, schedule_id: int, keys: list[tuple[int, int]]) -> None:
    """The show allows no lone seat: decided in the database, after the hold claimed its
    seats (their rows locked) and before the seat-map version is raised (no seat is waited
    for while holding that). The seats up to two places either side of each claimed one are
    read with a shared lock, so as last committed, and they cannot change until this hold
    commits: of two holds that would leave a gap together, the second sees the first's seats
    (it waited for them), or the two deadlock and the one run again sees them. A gap found
    raises, and the whole hold rolls back."""
    mine = set(keys)
    near = sorted({(r, col + d) for r, col in keys for d in (-2, -1, 1, 2)} - mine)
    status = {k: "held" for k in mine}
    if near:
        status.update({(r.seat_row, r.seat_col): r.status for r in (await tx.execute(
            f"SELECT seat_row, seat_col, status FROM seats WHERE schedule_id = "
            f"{int(schedule_id)} AND " + queries.seats_sql(near)
            + " LOCK IN SHARE MODE")).all()})
    lone = domain.single_gaps(status, keys)
    if lone:
        raise domain.single_gap_refusal(lone)


async def _unavailable_details(app: App, schedule_id: int,
                               keys: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """After a lost race for a seat: which seats were taken."""
    async with app.db.read() as conn:
        found = {(r.seat_row, r.seat_col): r.status for r in (await conn.execute(text(
            "SELECT seat_row, seat_col, status FROM seats WHERE schedule_id = :sid AND "
            + queries.seats_sql(keys)),
            {"sid": schedule_id})).all()}
    return domain.seats_not_available(found, keys) or [
        errors.invalid(["body", "seats"], "seat_taken", "taken by another buyer just now")]
