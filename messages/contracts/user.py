"""user_svc: accounts, login, roles."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from messages.contracts.base import (
    SPACE,
    UNCHANGED,
    Actor,
    Command,
    Event,
    JsonBool,
    PageQuery,
    Role,
    Strict,
    UtcDatetime,
)

Username = Annotated[str, StringConstraints(min_length=3, max_length=32,
                                            pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]
# An address mail can be sent to: no whitespace, control character or RFC 5322 special
# outside the one @ (a quoted local part is not taken). SMTP libraries refuse the others, and
# `<`, `>` or `,` could name another mailbox.
_SPECIALS = r'()<>\[\]:;@\\,"'  # as a regex character class lists them
_CONTROLS = r"\x00-\x1f\x7f"
_MAILBOX = f"[^{_SPECIALS}{SPACE}{_CONTROLS}]+"
Email = Annotated[str, StringConstraints(
    max_length=254, pattern=f"^{_MAILBOX}@{_MAILBOX}\\.{_MAILBOX}$")]
Language = Literal["en", "zh"]  # of the mail a user gets (zh: Simplified Chinese)


class User(BaseModel):
    id: int
    username: str
    email: str | None
    role: Role
    disabled: bool
    created_at: UtcDatetime
    email_verified: bool = False
    language: Language | None = None


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


# Request bodies, as API.md has them.
class RegisterBody(Strict):
    username: Username
    password: Password
    email: Email | None = None
    language: Language | None = None


class LoginBody(Strict):
    username: Annotated[str, Field(min_length=1, max_length=128)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class UpdateMeBody(Strict):
    email: Email | None
    language: Language | None = None


class ChangePasswordBody(Strict):
    old_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Password


class CreateUserBody(Strict):
    username: Username
    password: Password
    role: Role
    email: Email | None = None


class UpdateUserBody(Strict):
    """A field left out stays as it is; ``email`` may be null (none). A change of ``role`` or
    ``disabled`` ends the account's tokens."""

    role: Role = UNCHANGED
    email: Email | None = None
    disabled: JsonBool = UNCHANGED


# Commands.
class Register(RegisterBody, Command, name="user.register"):
    """Anyone: → User, a customer; 409 if the username is taken, unless this is the same
    request delivered again (within two minutes: it gets its account). With an e-mail, a
    verification code is mailed. Publishes ``user.registered``."""


class Login(LoginBody, Command, name="user.login"):
    """Anyone: → Token; 401 alike for a wrong name, a wrong password or a disabled account.
    Refused before any read when the password hashing could not start in time."""


class GetUser(Command, name="user.get"):
    """The account itself or an admin: → User; 404 if there is none."""

    id: int


class UpdateMe(UpdateMeBody, Command, name="user.update_me"):
    """Signed in: → User, with the e-mail and language sent; a new or unverified address is
    mailed a code. Publishes ``user.updated``."""


class ChangePassword(ChangePasswordBody, Command, name="user.change_password"):
    """Signed in: 401 if the old password is wrong. Every token issued before stops working:
    publishes ``user.access_changed``."""


class CustomerQuery(Strict):
    username: Annotated[str, Field(min_length=1, max_length=128)]


class FindCustomer(CustomerQuery, Command, name="user.find_customer"):
    """Clerk+: the customer account with this username (the box office sells on it)."""


class UserQuery(PageQuery):
    # Part of the username or of the e-mail address, in any case (`%` and `_` are literal).
    q: Annotated[str, Field(min_length=1, max_length=254)] | None = None
    role: Role | None = None


class ListUsers(UserQuery, Command, name="user.list"):
    """Admin: → a page of the accounts not deleted, by id; ``q`` and ``role`` narrow it."""


class CreateUser(CreateUserBody, Command, name="user.create"):
    """Admin: an account of any role, made as ``user.register`` makes one (409 if the name
    is taken)."""


class UpdateUser(UpdateUserBody, Command, name="user.update"):
    """Admin: → User; 409 for a change that would disable or demote the admin sending it.
    Publishes ``user.updated``, and ``user.access_changed`` when the role or ``disabled``
    changed (the account's tokens stop working)."""

    id: int


class DeleteUser(Command, name="user.delete"):
    """Admin, not on their own account (409): the account is kept as a row, so its name
    stays taken, but is not found. Publishes ``user.deleted`` and ``user.access_changed``."""

    id: int


class AccessList(Command, name="user.access_list"):
    """Every account whose older tokens no longer count; the gateway loads it at start."""


class AccountStatus(Command, name="user.account_status"):
    """For other services (no route): may this account be sold to? ticket_svc asks it when a
    clerk's hold names a ``customer_id``. Clerk+ callers only."""

    id: Annotated[int, Field(ge=1, le=2**63 - 1)]


class AccountState(BaseModel):
    id: int
    exists: bool   # false for an id no account has, or a deleted account
    active: bool   # exists and is not disabled


class Access(BaseModel):
    user_id: int
    token_version: int
    active: bool


class AccessEntries(BaseModel):
    entries: list[Access]


# Events.
class UserRegistered(Event, type="user.registered"):
    user: User


class UserUpdated(Event, type="user.updated"):
    user: User
    actor: Actor | None = None  # the staff member, for the audit log (issue 20.6)


class UserDeleted(Event, type="user.deleted"):
    user_id: int
    actor: Actor | None = None  # the staff member, for the audit log (issue 20.6)


class AccessChanged(Access, Event, type="user.access_changed"):
    """Tokens with an older ``token_version`` stop working; none work while not ``active``."""


class Ping(Command, name="user.ping"):
    """Answered by the RPC layer itself (every service answers ``<service>.ping``)."""


class Pong(BaseModel):
    service: str
    pid: int
