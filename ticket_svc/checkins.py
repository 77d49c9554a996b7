"""Check-in at the door: a ticket's code admits it once.

The database decides who is first: one conditional UPDATE (``… AND checked_in_at IS NULL AND
status = 'sold'``) per admission, so two door devices scanning one code at once get one
``admitted`` and one ``already_checked_in``, however many ticket_svc processes run; a refund
is the same kind of UPDATE with the opposite condition (``payments``), so a ticket is either
checked in or refunded, never both. Each admission emits ``ticket.checked_in`` (order_svc
counts attendance). Offline devices verify codes with the public key from
``checkin_list`` and upload their scans later (``batch``): the earliest scan of a code wins.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from messages import errors
from messages.contracts import door as d
from messages.contracts.base import Caller, Role, utcnow
from messages.db import as_utc, to_db
from messages.service import App
from ticket_svc import domain, etickets, queries
from ticket_svc.domain import REFUNDED, SOLD

_TICKET = (
    "SELECT t.id, t.reservation_id, t.schedule_id, t.user_id, t.seat_row, t.seat_col, "
    "t.price, t.ticket_type, t.status, t.sold_at, t.refunded_at, t.code_version, "
    "t.checked_in_at, "
    "s.play_id, s.play_name, s.studio_id, s.starts_at, s.ends_at "
    "FROM tickets t JOIN schedules s ON s.id = t.schedule_id WHERE t.id = :id")
TICKET = text(_TICKET)
TICKET_LOCKED = text(_TICKET + " FOR UPDATE")  # a locking read sees the latest commit

ADMIT = text(
    "UPDATE tickets SET checked_in_at = :at, checked_in_by = :by "
    f"WHERE id = :id AND status = '{SOLD}' AND checked_in_at IS NULL "
    "AND code_version = :version")


def code_of(app: App, row) -> str | None:
    """A sold ticket's check-in code; a refunded one has none."""
    if row.status != SOLD:
        return None
    return etickets.sign(app.settings.ticket_signing_key.get_secret_value(), etickets.CodeFacts(
        row.id, row.schedule_id, row.seat_row, row.seat_col, row.code_version))


async def e_ticket(app: App, caller: Caller, ticket_id: int) -> d.ETicket:
    async with app.db.read() as conn:
        row = (await conn.execute(TICKET, {"id": ticket_id})).first()
    if row is None:
        raise errors.NotFound("no such ticket")
    caller.require_owner_or(row.user_id, Role.clerk, "ticket")
    return _e_ticket_of(app, row)


def _e_ticket_of(app: App, row) -> d.ETicket:
    return d.ETicket(**queries.ticket_of(row).model_dump(), code=code_of(app, row),
                     checked_in_at=as_utc(row.checked_in_at), play_id=row.play_id,
                     play_name=row.play_name, studio_id=row.studio_id,
                     starts_at=as_utc(row.starts_at), ends_at=as_utc(row.ends_at))


REISSUE = text(
    "UPDATE tickets SET code_version = code_version + 1 "
    f"WHERE id = :id AND status = '{SOLD}' AND checked_in_at IS NULL")


async def reissue(app: App, caller: Caller, ticket_id: int) -> d.ETicket:
    """A new code for a sold ticket: its code version goes up by one, so every earlier code
    (signed with the version it had) is refused at the door. The conditional UPDATE decides
    against a check-in or a refund at the same moment: either it was first (409) or the new
    code stands (and the check-in of the old one is refused)."""
    now = utcnow()
    async with app.db.transaction() as tx:
        row = (await tx.execute(TICKET, {"id": ticket_id})).first()
        if row is None:
            raise errors.NotFound("no such ticket")
        caller.require_owner_or(row.user_id, Role.clerk, "ticket")
        _check_code_live(row)
        if row.ends_at is not None and as_utc(row.ends_at) <= now:
            raise errors.Conflict("the show has ended")
        if (await tx.execute(REISSUE, {"id": ticket_id})).rowcount != 1:
            # Refunded or checked in meanwhile: the latest commit says which.
            _check_code_live((await tx.execute(text(
                "SELECT status, checked_in_at FROM tickets WHERE id = :id FOR UPDATE"),
                {"id": ticket_id})).first())
            raise errors.Conflict("the ticket changed meanwhile; try again")
        row = (await tx.execute(TICKET, {"id": ticket_id})).first()  # with its own change
        code = code_of(app, row)
        tx.emit(d.TicketReissued(
            ticket_id=row.id, reservation_id=row.reservation_id, user_id=row.user_id,
            schedule_id=row.schedule_id, play_id=row.play_id, studio_id=row.studio_id,
            row=row.seat_row, col=row.seat_col, price=row.price, code=code,
            code_version=row.code_version, play_name=row.play_name,
            starts_at=as_utc(row.starts_at), reissued_at=now,
            actor=caller.actor() if caller.user_id != row.user_id else None))
    return _e_ticket_of(app, row)


def _check_code_live(row) -> None:
    """409 when the ticket's code can no longer be replaced: refunded, or spent at the door."""
    if row.status == REFUNDED:
        raise errors.TicketRefunded("the ticket was refunded; it has no code")
    if row.checked_in_at is not None:
        raise errors.Conflict("the ticket was checked in already; its code is spent")


def _refusal(row, facts: etickets.CodeFacts, schedule_id: int | None) -> None:
    """Why this ticket may not come in (raised), before the door window is looked at."""
    if row is None or (row.schedule_id, row.seat_row, row.seat_col) != (
            facts.schedule_id, facts.row, facts.col):
        raise errors.InvalidCode("no ticket of this code")
    if row.code_version != facts.version:
        raise errors.InvalidCode("the code was replaced by a newer one")
    if schedule_id is not None and row.schedule_id != schedule_id:
        raise errors.WrongShow(f"the ticket is for show {row.schedule_id}")
    if row.status == REFUNDED:
        raise errors.TicketRefunded("the ticket was refunded")
    if row.checked_in_at is not None:
        first = as_utc(row.checked_in_at)
        raise errors.AlreadyCheckedIn(
            f"checked in at {first.isoformat()}",
            details=[errors.invalid(["checked_in_at"], "checked_in", first.isoformat(),
                                    at=first.isoformat())])


async def admit(app: App, caller: Caller, code: str, schedule_id: int | None,
                at: datetime | None = None, offline: bool = False) -> tuple[object, datetime]:
    """Admit the ticket of ``code`` (at ``at``, a scan made offline, else now): its row and
    the check-in time, or the typed refusal."""
    caller.require(Role.clerk)
    seed = app.settings.ticket_signing_key.get_secret_value()
    facts = etickets.verify_with(seed, code)
    now = utcnow()
    at = min(at, now) if at is not None else now
    async with app.db.transaction() as tx:
        row = (await tx.execute(TICKET, {"id": facts.ticket_id})).first()
        _refusal(row, facts, schedule_id)
        domain.check_checkin_open(domain.checkin_window(
            as_utc(row.starts_at), as_utc(row.ends_at), app.settings.checkin_opens_minutes), at)
        done = await tx.execute(ADMIT, {"id": row.id, "at": to_db(at), "by": caller.user_id,
                                        "version": facts.version})
        if done.rowcount != 1:  # another door, or a refund, was first: say which
            _refusal((await tx.execute(TICKET_LOCKED, {"id": row.id})).first(), facts,
                     schedule_id)
            raise errors.Conflict("the ticket changed meanwhile; scan it again")
        tx.emit(d.TicketCheckedIn(
            ticket_id=row.id, reservation_id=row.reservation_id, user_id=row.user_id,
            schedule_id=row.schedule_id, play_id=row.play_id, studio_id=row.studio_id,
            row=row.seat_row, col=row.seat_col, price=row.price, checked_in_at=at,
            offline=offline))
    return row, at


async def checkin(app: App, caller: Caller, cmd: d.Checkin) -> d.CheckinResult:
    row, at = await admit(app, caller, cmd.code, cmd.schedule_id)
    return d.CheckinResult(ticket=queries.ticket_of(row), checked_in_at=at)


_SCAN_RESULTS = {errors.AlreadyCheckedIn: d.ScanResult.duplicate,
                 errors.TicketRefunded: d.ScanResult.ticket_refunded,
                 errors.WrongShow: d.ScanResult.wrong_show,
                 errors.CheckinClosed: d.ScanResult.checkin_closed,
                 errors.InvalidCode: d.ScanResult.invalid_code}


async def batch(app: App, caller: Caller, cmd: d.CheckinBatch) -> d.CheckinBatchResult:
    """Scans a door device made offline, in the order they were made (the first scan of a
    code wins; the others, and codes checked in online before, are ``duplicate``)."""
    caller.require(Role.clerk)
    answers: list[d.ScanAnswer] = []
    order = sorted(range(len(cmd.scans)), key=lambda i: (cmd.scans[i].scanned_at, i))
    for index in order:
        scan = cmd.scans[index]
        answer = d.ScanAnswer(index=index, code=scan.code, result=d.ScanResult.admitted)
        try:
            row, at = await admit(app, caller, scan.code, cmd.schedule_id, scan.scanned_at,
                                  offline=True)
            answer.ticket_id, answer.checked_in_at = row.id, at
        except errors.ServiceError as exc:
            kind = _SCAN_RESULTS.get(type(exc))
            if kind is None:
                raise
            answer.result = kind
            if isinstance(exc, errors.AlreadyCheckedIn):
                answer.checked_in_at = datetime.fromisoformat(exc.details[0]["msg"])
            if kind is not d.ScanResult.invalid_code:
                answer.ticket_id = _ticket_id(scan.code)
        answers.append(answer)
    answers.sort(key=lambda a: a.index)
    return d.CheckinBatchResult(
        admitted=sum(a.result is d.ScanResult.admitted for a in answers), items=answers)


def _ticket_id(code: str) -> int | None:
    try:
        return etickets.CodeFacts(*etickets.unverified(code)).ticket_id
    except ValueError:
        return None


async def checkin_list(app: App, caller: Caller, schedule_id: int) -> d.CheckinList:
    caller.require(Role.clerk)
    async with app.db.read() as conn:
        show = (await conn.execute(text(
            "SELECT starts_at, ends_at FROM schedules WHERE id = :id"),
            {"id": schedule_id})).first()
        if show is None:
            raise errors.NotFound("no such show")
        rows = (await conn.execute(text(
            "SELECT id, status, checked_in_at, code_version FROM tickets "
            "WHERE schedule_id = :id ORDER BY id"), {"id": schedule_id})).all()
    opens, closes = domain.checkin_window(as_utc(show.starts_at), as_utc(show.ends_at),
                                          app.settings.checkin_opens_minutes)
    seed = app.settings.ticket_signing_key.get_secret_value()
    return d.CheckinList(
        schedule_id=schedule_id, algorithm=etickets.ALGORITHM,
        public_key=etickets.public_key_text(seed), code_prefix=etickets.PREFIX,
        opens_at=opens, closes_at=closes, sold=sum(r.status == SOLD for r in rows),
        refunded=[r.id for r in rows if r.status == REFUNDED],
        checked_in=[r.id for r in rows if r.checked_in_at is not None],
        reissued={str(r.id): r.code_version for r in rows
                  if r.status == SOLD and r.code_version != etickets.FIRST_CODE_VERSION},
        generated_at=utcnow())
