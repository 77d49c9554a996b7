"""Base classes shared by every contract: commands, events, the envelope, roles, pages."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
)
from pydantic_core import PydanticCustomError

from messages import errors

COMMANDS: dict[str, type[Command]] = {}
EVENTS: dict[str, type[Event]] = {}

T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc_iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Timestamps in answers are always UTC, RFC 3339.
UtcDatetime = Annotated[AwareDatetime, PlainSerializer(_utc_iso, return_type=str)]


# What a client sends, taken by its JSON type: pydantic's lax mode reads a number as a date
# (0 is 1970-01-01, also the text "0" of a query string) and 0/1 as a boolean. A date or a
# timestamp must be a string in ISO 8601 / RFC 3339 form, in a body and in a query string
# alike; a boolean must be true or false. (A Python date, datetime or bool built by our own
# code passes through: no JSON or query string can produce one.)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_text(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise PydanticCustomError("date_text", "must be a date written as a string YYYY-MM-DD")
    return value


def _datetime_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise PydanticCustomError("datetime_text", "must be a timestamp written as an RFC 3339 "
                                  "string (YYYY-MM-DDTHH:MM:SS with an offset)")
    return value


# Unicode White_Space, what pydantic strips and its regex engine calls `\s`, spelled out:
# JSON Schema's (ECMA) `\s` differs (it lacks U+0085 and has U+FEFF), and a document that
# said `\s` would let a generated client send what the server refuses.
SPACE = ("\\t\\n\\v\\f\\r\\x20\\u0085\\u00a0\\u1680\\u2000-\\u200a"
         "\\u2028\\u2029\\u202f\\u205f\\u3000")
# A name is stripped of that whitespace and must keep at least one character.
NOT_BLANK = {"pattern": f"[^{SPACE}]"}

# The default of a field of a change (PATCH) body that may be left out, meaning unchanged, but
# not sent as null: pydantic does not validate a default, so a field typed without None takes
# it when absent and refuses an explicit null. (Typed Any so that such a field may.)
UNCHANGED: Any = None

IsoDate = Annotated[date, BeforeValidator(_date_text)]
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_datetime_text)]
JsonBool = StrictBool


class Role(StrEnum):
    customer = "customer"
    clerk = "clerk"
    manager = "manager"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


_RANK = {Role.customer: 1, Role.clerk: 2, Role.manager: 3, Role.admin: 9}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Actor(BaseModel):
    """Who did a staff action, carried by the events the audit log is made from (issue 20.6):
    the account, its role and the client address the gateway saw."""

    user_id: int | None = None
    role: str | None = None
    address: str | None = None
    at: UtcDatetime | None = None  # when it was done


class Caller(Strict):
    """Who is asking, as the gateway verified it. ``user_id`` is None for anonymous calls.
    ``address``: the client's address, passed by the gateway for staff callers only (it is
    what the audit log records)."""

    user_id: int | None = None
    role: Role | None = None
    address: str | None = None

    def actor(self) -> Actor:
        return Actor(user_id=self.user_id, role=self.role.value if self.role else None,
                     address=self.address, at=utcnow())

    @property
    def anonymous(self) -> bool:
        return self.user_id is None

    def at_least(self, role: Role) -> bool:
        return self.role is not None and self.role.at_least(role)

    def owns_or_at_least(self, owner_id: int, role: Role) -> bool:
        return (self.user_id is not None and self.user_id == owner_id) or self.at_least(role)

    # The caller checks every service makes, each with its one answer.

    def require_signed_in(self) -> int:
        """The caller's user id; 401 for an anonymous caller."""
        if self.user_id is None:
            raise errors.Unauthorized("sign in first")
        return self.user_id

    def require(self, role: Role) -> None:
        """403 unless the caller has ``role`` or a higher one."""
        if not self.at_least(role):
            raise errors.Forbidden(_NEEDS.get(role, f"this needs the {role} role"))

    def require_owner_or(self, owner_id: int, role: Role, what: str) -> None:
        """403 unless the caller owns the thing (``what``) or has ``role`` or a higher one."""
        if not self.owns_or_at_least(owner_id, role):
            raise errors.Forbidden(f"only its owner or box-office staff may use this {what}")


_NEEDS = {"manager": "this needs the manager role", "admin": "only an admin may do this"}
# Who a service is when it calls another service on its own behalf (no user): anonymous.
SERVICE_CALLER = Caller()


class Command(Strict):
    """A request to one service. Subclasses declare ``name="<service>.<verb>"``."""

    name: ClassVar[str]
    service: ClassVar[str]

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.__command_name = name

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Set after pydantic built the class: a body field called ``name`` would otherwise
        # hide the command's own name.
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("_Command__command_name")
        if name is not None:
            cls.name = name
            cls.service = name.split(".", 1)[0]
            COMMANDS[name] = cls


class Event(BaseModel):
    """A fact. Subclasses declare ``type="<aggregate>.<event>"``, also the routing key."""

    type: ClassVar[str]
    version: ClassVar[int] = 1

    def __init_subclass__(cls, type: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type is not None:
            cls.type = type
            EVENTS[type] = cls


class Envelope(BaseModel):
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    occurred_at: UtcDatetime = Field(default_factory=utcnow)
    producer: str
    version: int = 1
    data: dict[str, Any]

    @classmethod
    def wrap(cls, event: Event, producer: str) -> Envelope:
        return cls(type=event.type, producer=producer, version=event.version,
                   data=event.model_dump(mode="json"))


class PageQuery(Strict):
    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(20, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
