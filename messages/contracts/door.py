"""ticket_svc at the door: e-tickets (a sold ticket's signed check-in code) and check-in,
online and offline. The code's scheme is described in ``ticket_svc/etickets.py``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from messages.contracts.base import Actor, Command, IsoDatetime, Strict, UtcDatetime
from messages.contracts.ticket import Id, SoldTicketEvent, Ticket

MAX_CODE = 200
MAX_BATCH = 500


class ETicket(Ticket):
    """``GET /tickets/{id}``: a ticket with its check-in code (null once refunded) and what a
    printed ticket shows."""

    code: str | None = None
    checked_in_at: UtcDatetime | None = None
    play_id: int
    play_name: str
    studio_id: int
    starts_at: UtcDatetime
    ends_at: UtcDatetime | None = None


class CheckinBody(Strict):
    code: str = Field(min_length=1, max_length=MAX_CODE)
    schedule_id: Id | None = None  # the show at this door: a ticket for another is wrong_show


class CheckinResult(BaseModel):
    result: str = "admitted"
    ticket: Ticket
    checked_in_at: UtcDatetime


class Scan(Strict):
    code: str = Field(min_length=1, max_length=MAX_CODE)
    scanned_at: IsoDatetime


class CheckinBatchBody(Strict):
    schedule_id: Id | None = None
    scans: list[Scan] = Field(min_length=1, max_length=MAX_BATCH)


class ScanResult(StrEnum):
    admitted = "admitted"
    duplicate = "duplicate"              # the code was checked in before (online or earlier scan)
    ticket_refunded = "ticket_refunded"
    wrong_show = "wrong_show"
    checkin_closed = "checkin_closed"    # scanned outside the show's door window
    invalid_code = "invalid_code"
    not_found = "not_found"              # well signed, but no such ticket here


class ScanAnswer(BaseModel):
    index: int                           # the scan's place in the request
    code: str
    result: ScanResult
    ticket_id: int | None = None
    checked_in_at: UtcDatetime | None = None  # for admitted and duplicate: the first check-in


class CheckinBatchResult(BaseModel):
    admitted: int
    items: list[ScanAnswer]


class CheckinList(BaseModel):
    """What a door device needs to admit a show's tickets without the server: the public key
    (verify each code's signature), the door window, and the tickets that must be refused
    (refunded) or are in already (checked in) at the time of this answer."""

    schedule_id: int
    algorithm: str
    public_key: str                      # Ed25519, 32 raw bytes in base64url
    code_prefix: str
    opens_at: UtcDatetime
    closes_at: UtcDatetime
    sold: int
    refunded: list[int]                  # ticket ids
    checked_in: list[int]
    # Tickets whose code was reissued: {ticket id (as text): the code version that admits};
    # a code of an older version is refused.
    reissued: dict[str, int] = {}
    generated_at: UtcDatetime


# -- commands --------------------------------------------------------------------------------

class GetTicket(Command, name="ticket.get_ticket"):
    """Its owner or a clerk: → ETicket; 404 if there is none."""

    id: int


class Checkin(CheckinBody, Command, name="ticket.checkin"):
    """Clerk: admits the ticket of a scanned code, once → CheckinResult. Each refusal is
    typed: ``invalid_code``, ``wrong_show``, ``ticket_refunded``, ``already_checked_in``
    (with the first time), ``checkin_closed`` outside the door window. Publishes
    ``ticket.checked_in``."""


class CheckinBatch(CheckinBatchBody, Command, name="ticket.checkin_batch"):
    """Clerk: the scans a door device made offline → CheckinBatchResult, one answer a scan."""


class ReissueCode(Command, name="ticket.reissue_code"):
    """Its owner or a clerk: a new check-in code for a sold ticket (one shared or lost) →
    ETicket with the new code; the old one is refused at the door from now on (``invalid_code``;
    the check-in list names the version that admits). 409 ``ticket_refunded``; 409
    ``conflict`` once checked in or once the show has ended. Publishes ``ticket.reissued``."""

    id: int  # ticket id


class GetCheckinList(Command, name="ticket.checkin_list"):
    """Clerk: → CheckinList, what a door device needs to admit the show offline."""

    id: int  # the show


# -- events ----------------------------------------------------------------------------------

class TicketCheckedIn(SoldTicketEvent, type="ticket.checked_in"):
    checked_in_at: UtcDatetime
    offline: bool = False


class TicketReissued(SoldTicketEvent, type="ticket.reissued"):
    """A ticket's check-in code was replaced: the new code, for the buyer's mail; ``actor``
    when staff did it (audited)."""

    code: str
    code_version: int
    play_name: str
    starts_at: UtcDatetime
    reissued_at: UtcDatetime
    actor: Actor | None = None
