"""The typed errors of TTMS, mapped once to the contract's stable codes and HTTP statuses.

A handler raises one of these; the RPC layer carries it as ``{code, message, details}`` and the
caller gets the same class back; the gateway turns it into problem+json.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ServiceError(Exception):
    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, message: str | None = None, details: list[dict[str, Any]] | None = None,
                 retry_after: float | None = None) -> None:
        self.message = message or self.title
        self.details = details or []
        self.retry_after = retry_after
        super().__init__(self.message)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            wire["details"] = self.details
        if self.retry_after is not None:
            wire["retry_after"] = self.retry_after
        return wire

    @staticmethod
    def from_wire(wire: dict[str, Any]) -> ServiceError:
        cls = BY_CODE.get(wire.get("code", ""), InternalError)
        return cls(wire.get("message"), wire.get("details"), wire.get("retry_after"))


class InternalError(ServiceError):
    pass


class BadRequest(ServiceError):
    code, status, title = "bad_request", 400, "Bad request"


class Unauthorized(ServiceError):
    code, status, title = "unauthorized", 401, "Unauthorized"


class Forbidden(ServiceError):
    code, status, title = "forbidden", 403, "Forbidden"


class NotFound(ServiceError):
    code, status, title = "not_found", 404, "Not found"


class Conflict(ServiceError):
    code, status, title = "conflict", 409, "Conflict"


class ScheduleConflict(ServiceError):
    code, status, title = "schedule_conflict", 409, "The show overlaps another show"


class SeatUnavailable(ServiceError):
    code, status, title = "seat_unavailable", 409, "Seat unavailable"


class SingleSeatGap(ServiceError):
    code, status, title = "single_seat_gap", 409, "The hold would leave a single seat alone"


class SalesClosed(ServiceError):
    code, status, title = "sales_closed", 409, "Sales are closed for this show"


class RefundClosed(ServiceError):
    code, status, title = "refund_closed", 409, "Refunds are closed for this show"


class HoldExpired(ServiceError):
    code, status, title = "hold_expired", 409, "The hold expired or was cancelled"


class AlreadyCheckedIn(ServiceError):
    code, status, title = "already_checked_in", 409, "The ticket was already checked in"


class TicketRefunded(ServiceError):
    code, status, title = "ticket_refunded", 409, "The ticket was refunded"


class WrongShow(ServiceError):
    code, status, title = "wrong_show", 409, "The ticket is for another show"


class CheckinClosed(ServiceError):
    code, status, title = "checkin_closed", 409, "Check-in is not open for this show"


class InvalidCode(ServiceError):
    code, status, title = "invalid_code", 422, "Not a valid check-in code"


class LimitReached(ServiceError):
    code, status, title = ("limit_reached", 409,
                           "The account's ticket limit for this show is reached")


class ValidationFailed(ServiceError):
    code, status, title = "validation_error", 422, "Validation error"


class IdempotencyKeyReused(ServiceError):
    code, status, title = ("idempotency_key_reused", 422,
                           "Idempotency-Key reused with a different request")


class RateLimited(ServiceError):
    code, status, title = "rate_limited", 429, "Too many requests"


class ServiceUnavailable(ServiceError):
    code, status, title = "service_unavailable", 503, "Service unavailable"


class Timeout(ServiceError):
    code, status, title = "timeout", 504, "Timeout"


BY_CODE: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (InternalError, BadRequest, Unauthorized, Forbidden, NotFound, Conflict,
                ScheduleConflict, SeatUnavailable, SingleSeatGap, SalesClosed, RefundClosed,
                HoldExpired, LimitReached,
                ValidationFailed, IdempotencyKeyReused, RateLimited, ServiceUnavailable,
                Timeout, AlreadyCheckedIn, TicketRefunded, WrongShow, CheckinClosed,
                InvalidCode)
}


def invalid(loc: list[Any], type_: str, msg: str, **ctx: Any) -> dict[str, Any]:
    """One item of a 422's ``errors``: where, a stable ``type`` a client may word in its own
    language (pydantic's types, and ours for the rules the services check), the English
    ``msg``, and ``ctx``, the values the wording needs."""
    item: dict[str, Any] = {"loc": loc, "type": type_, "msg": msg}
    if ctx:
        item["ctx"] = ctx
    return item


def validation_details(exc: Any, where: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """pydantic ValidationError → the contract's ``errors`` list, each item's ``loc`` starting
    with ``where``. Of pydantic's ``ctx`` only the plain values travel (a failed validator's
    exception object does not)."""
    return [invalid([*where, *e["loc"]], e["type"], e["msg"], **{
        k: v for k, v in (e.get("ctx") or {}).items()
        if isinstance(v, int | float | str) and not isinstance(v, bool)})
        for e in exc.errors(include_url=False)]


def from_infrastructure(exc: BaseException) -> ServiceError | None:
    """A database or network failure → 503; anything else is a bug (None)."""
    import asyncmy.errors
    from sqlalchemy import exc as sa

    if isinstance(exc, ServiceUnavailable):  # already one (a database that is not answering)
        return exc

    if isinstance(exc, sa.DBAPIError) and (
            exc.connection_invalidated or isinstance(exc, sa.OperationalError | sa.InterfaceError)):
        return ServiceUnavailable("the database is unavailable")
    if isinstance(exc, asyncmy.errors.OperationalError | asyncmy.errors.InterfaceError):
        return ServiceUnavailable("the database is unavailable")
    if isinstance(exc, sa.TimeoutError | ConnectionError | OSError):
        return ServiceUnavailable("a dependency is unavailable")
    if isinstance(exc, RuntimeError) and "Transport" in str(exc):
        # asyncmy's answer to a refused connection: "Transport does not expose socket instance"
        return ServiceUnavailable("the database is unavailable")
    return None
