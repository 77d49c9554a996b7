"""user_svc's command handlers: one function per command and event. E-mail lives in the
modules named for it: ``verification`` (account addresses), ``password_reset``,
``ticket_mail`` (from ticket_svc's events), ``mails`` (texts, and the outbox) and ``mailer``
(SMTP)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from messages import errors, tokens
from messages.contracts import door as d
from messages.contracts import mail as m
from messages.contracts import ticket as t
from messages.contracts import user as c
from messages.contracts.base import Caller, Page, Role, utcnow
from messages.db import Tx, as_utc, load_row, to_db
from messages.service import App, Context, Handlers
from user_svc import mailer, password_reset, ticket_mail, verification
from user_svc.hashing import HashingGate, cores
from user_svc.passwords import Passwords
from user_svc.tables import users

log = logging.getLogger("ttms.user")
handlers = Handlers()
_passwords: Passwords | None = None
_gate: HashingGate | None = None


def passwords(app: App) -> Passwords:
    global _passwords
    if _passwords is None:
        _passwords = Passwords(app.settings)
    return _passwords


def hashing_gate(app: App) -> HashingGate:
    global _gate
    if _gate is None:
        _gate = HashingGate(app.settings.argon2_concurrency or cores(),
                            passwords(app).measured_cost)
    return _gate


async def _hashing(ctx: Context, fn, *args, only_if_free: bool = False):
    """``fn(*args)`` (a hash or a verify) in a worker thread, if it can start in time for the
    command's caller; otherwise 503 with Retry-After at once (see user_svc/hashing.py)."""
    return await hashing_gate(ctx.app).run(fn, *args, deadline=ctx.deadline,
                                           only_if_free=only_if_free)


def to_user(row) -> c.User:
    return c.User(id=row.id, username=row.username, email=row.email, role=Role(row.role),
                  disabled=row.disabled, created_at=as_utc(row.created_at),
                  email_verified=bool(row.email_verified), language=row.language)


# Deleted accounts stay as rows (the name stays taken) but are not found.
LIVE = users.c.deleted_at.is_(None)


async def _load(tx: Tx, user_id: int, *, lock: bool = False):
    return await load_row(tx, users, user_id, "user", LIVE, lock="update" if lock else None)


async def _create(ctx: Context, username: str, password: str, role: Role,
                  email: str | None, language: str | None = None) -> c.User:
    password_hash = await _hashing(ctx, passwords(ctx.app).hash, password)
    try:
        async with ctx.app.db.transaction() as tx:
            result = await tx.execute(users.insert().values(
                username=username, email=email, password_hash=password_hash, role=role.value,
                disabled=False, token_version=0, created_at=to_db(utcnow()),
                language=language))
            row = await _load(tx, result.inserted_primary_key[0])
            user = to_user(row)
            tx.emit(c.UserRegistered(user=user))
            if email:
                await verification.send_code(tx, ctx.app, row)
    except IntegrityError:
        existing = await _same_request_again(ctx, username, password, role, email)
        if existing is None:
            raise errors.Conflict("that username is taken") from None
        return existing
    return user


# A command is delivered at least once: if the process dies after the commit but before the
# reply, the broker hands the command to the next process. The caller must then get its
# account, not a 409 for it.
RERUN_WINDOW = timedelta(minutes=2)


async def _same_request_again(ctx: Context, username: str, password: str, role: Role,
                              email: str | None) -> c.User | None:
    async with ctx.app.db.read() as conn:
        row = (await conn.execute(select(users).where(users.c.username == username))).first()
    if (row is None or row.deleted_at is not None or row.role != role.value
            or row.email != email or as_utc(row.created_at) < utcnow() - RERUN_WINDOW):
        return None
    if not await _hashing(ctx, passwords(ctx.app).verify, row.password_hash, password):
        return None
    return to_user(row)


@handlers.command(c.Register)
async def register(cmd: c.Register, ctx: Context) -> c.User:
    return await _create(ctx, cmd.username, cmd.password, Role.customer, cmd.email,
                         cmd.language)


@handlers.command(c.CreateUser)
async def create_user(cmd: c.CreateUser, ctx: Context) -> c.User:
    ctx.caller.require(Role.admin)
    return await _create(ctx, cmd.username, cmd.password, cmd.role, cmd.email)


@handlers.command(c.Login)
async def login(cmd: c.Login, ctx: Context) -> c.Token:
    hashing_gate(ctx.app).admit(ctx.deadline)  # in a storm, refused before the read
    async with ctx.app.db.read() as conn:
        row = (await conn.execute(select(users).where(
            users.c.username == cmd.username, LIVE))).first()
    hasher = passwords(ctx.app)
    ok = await _hashing(ctx, hasher.verify, row.password_hash if row else hasher.decoy,
                        cmd.password)
    if row is None or not ok or row.disabled:
        raise errors.Unauthorized("wrong username or password")
    if hasher.needs_rehash(row.password_hash):
        await _rehash(ctx, row, cmd.password)
    settings = ctx.app.settings
    return c.Token(access_token=tokens.mint(settings, row.id, Role(row.role), row.token_version),
                   expires_in=settings.jwt_ttl_seconds)


async def _rehash(ctx: Context, row, password: str) -> None:
    """A hash made with older parameters is replaced at sign-in, the only time the password
    is known. Only when a hashing slot is free right now: during a storm it waits for a
    later sign-in rather than take a slot from someone waiting to sign in."""
    try:
        new_hash = await _hashing(ctx, passwords(ctx.app).hash, password, only_if_free=True)
    except errors.ServiceError:
        return
    try:
        async with ctx.app.db.transaction() as tx:
            # Not over a password changed meanwhile; same password, so tokens stay valid.
            await tx.execute(users.update().where(
                users.c.id == row.id, users.c.password_hash == row.password_hash,
            ).values(password_hash=new_hash))
    except Exception as exc:  # noqa: BLE001 - the sign-in stands; the next one retries
        log.warning("could not store the rehashed password of user %s: %s", row.id, exc)


@handlers.command(c.GetUser)
async def get_user(cmd: c.GetUser, ctx: Context) -> c.User:
    if ctx.caller.user_id != cmd.id:
        ctx.caller.require(Role.admin)
    return to_user(await ctx.app.db.row(users, cmd.id, "user", LIVE))


@handlers.command(c.UpdateMe)
async def update_me(cmd: c.UpdateMe, ctx: Context) -> c.User:
    async with ctx.app.db.transaction() as tx:
        before = await _load(tx, ctx.caller.require_signed_in(), lock=True)
        values = {"email": cmd.email}
        if cmd.email != before.email:
            values["email_verified"] = False
        if cmd.language is not None:
            values["language"] = cmd.language
        await tx.execute(users.update().where(users.c.id == ctx.caller.user_id)
                         .values(**values))
        row = await _load(tx, ctx.caller.user_id)
        user = to_user(row)
        tx.emit(c.UserUpdated(user=user))
        # A new address, or the same one not yet verified (a way to ask for a new code).
        if row.email and not row.email_verified:
            await verification.send_code(tx, ctx.app, row)
    return user


@handlers.command(c.ChangePassword)
async def change_password(cmd: c.ChangePassword, ctx: Context) -> None:
    row = await ctx.app.db.row(users, ctx.caller.require_signed_in(), "user", LIVE)
    hasher = passwords(ctx.app)
    if not await _hashing(ctx, hasher.verify, row.password_hash, cmd.old_password):
        raise errors.Unauthorized("the old password is wrong")
    new_hash = await _hashing(ctx, hasher.hash, cmd.new_password)
    async with ctx.app.db.transaction() as tx:
        # Every token issued before the change stops working, this session's too.
        await tx.execute(users.update().where(users.c.id == row.id).values(
            password_hash=new_hash, token_version=users.c.token_version + 1))
        _emit_access(tx, await _load(tx, row.id))


# -- e-mail: verification, password reset, ticket mail ----------------------------------------

@handlers.command(m.VerifyEmail)
async def verify_email(cmd: m.VerifyEmail, ctx: Context) -> c.User:
    await verification.verify(ctx, cmd.code)
    async with ctx.app.db.transaction() as tx:
        user = to_user(await _load(tx, ctx.caller.user_id))
        tx.emit(c.UserUpdated(user=user))
    return user


@handlers.command(m.PasswordReset)
async def request_password_reset(cmd: m.PasswordReset, ctx: Context) -> None:
    await password_reset.request(ctx, cmd.email)


@handlers.command(m.PasswordResetConfirm)
async def confirm_password_reset(cmd: m.PasswordResetConfirm, ctx: Context) -> None:
    await password_reset.confirm(ctx, cmd.token, cmd.new_password,
                                 lambda pw: _hashing(ctx, passwords(ctx.app).hash, pw))


# The ticket events that are mailed to their buyer (``ticket_mail``). Every sale and refund of
# the theater passes here, most to buyers without a verified address: plain asyncmy, the events
# that wait together in one transaction (SQLAlchemy per event cost about 2 ms of CPU per sale
# in the sell-out bench).
TICKET_MAIL = {
    t.TicketSold: ticket_mail.sold,
    t.TicketRefunded: ticket_mail.refunded,
    d.TicketReissued: ticket_mail.reissued,
    t.ShowReminder: ticket_mail.reminder,
}
for _event, _mail in TICKET_MAIL.items():
    handlers.event(_event, plain=True)(_mail)


@handlers.startup
async def send_mail(app: App) -> None:
    await mailer.send_forever(app, compose=password_reset.resolve_due)


@handlers.command(c.FindCustomer)
async def find_customer(cmd: c.FindCustomer, ctx: Context) -> c.User:
    if not ctx.caller.at_least(Role.clerk):
        raise errors.Forbidden("only staff may look customers up")
    async with ctx.app.db.read() as conn:
        row = (await conn.execute(select(users).where(
            users.c.username == cmd.username, users.c.role == Role.customer.value,
            LIVE))).first()
    if row is None:
        raise errors.NotFound(f"no customer is named {cmd.username}")
    return to_user(row)


@handlers.command(c.ListUsers)
async def list_users(cmd: c.ListUsers, ctx: Context) -> Page[c.User]:
    ctx.caller.require(Role.admin)
    where = [LIVE]
    if cmd.q is not None:
        part = cmd.q.lower()
        where.append(or_(func.lower(users.c.username).contains(part, autoescape=True),
                         func.lower(users.c.email).contains(part, autoescape=True)))
    if cmd.role is not None:
        where.append(users.c.role == cmd.role.value)
    return await ctx.app.db.page(select(users), users, where, [users.c.id], cmd, to_user)


@handlers.command(c.UpdateUser)
async def update_user(cmd: c.UpdateUser, ctx: Context) -> c.User:
    ctx.caller.require(Role.admin)
    changes = cmd.model_dump(exclude_unset=True, exclude={"id"})
    if cmd.id == ctx.caller.user_id and (changes.get("disabled") or
                                         changes.get("role", Role.admin) != Role.admin):
        raise errors.Conflict("an admin cannot disable or demote their own account")
    async with ctx.app.db.transaction() as tx:
        before = await _load(tx, cmd.id, lock=True)
        values = {k: (v.value if isinstance(v, Role) else v) for k, v in changes.items()}
        access_changed = (values.get("role", before.role) != before.role
                          or values.get("disabled", before.disabled) != before.disabled)
        if access_changed:
            values["token_version"] = before.token_version + 1
        if values:
            await tx.execute(users.update().where(users.c.id == cmd.id).values(**values))
        after = await _load(tx, cmd.id)
        user = to_user(after)
        tx.emit(c.UserUpdated(user=user, actor=ctx.caller.actor()))
        if access_changed:
            _emit_access(tx, after)
    return user


@handlers.command(c.DeleteUser)
async def delete_user(cmd: c.DeleteUser, ctx: Context) -> None:
    ctx.caller.require(Role.admin)
    if cmd.id == ctx.caller.user_id:
        raise errors.Conflict("an admin cannot delete their own account")
    async with ctx.app.db.transaction() as tx:
        row = await _load(tx, cmd.id, lock=True)
        await tx.execute(users.update().where(users.c.id == cmd.id).values(
            deleted_at=to_db(utcnow()), disabled=True, token_version=row.token_version + 1))
        tx.emit(c.UserDeleted(user_id=cmd.id, actor=ctx.caller.actor()))
        tx.emit(c.AccessChanged(user_id=cmd.id, token_version=row.token_version + 1,
                                active=False))


@handlers.command(c.AccessList)
async def access_list(cmd: c.AccessList, ctx: Context) -> c.AccessEntries:
    async with ctx.app.db.read() as conn:
        rows = (await conn.execute(select(users.c.id, users.c.token_version, users.c.disabled,
                                          users.c.deleted_at).where(
            (users.c.token_version > 0) | users.c.disabled | users.c.deleted_at.is_not(None))
        )).all()
    return c.AccessEntries(entries=[
        c.Access(user_id=r.id, token_version=r.token_version,
                 active=not r.disabled and r.deleted_at is None) for r in rows])


@handlers.command(c.AccountStatus)
async def account_status(cmd: c.AccountStatus, ctx: Context) -> c.AccountState:
    if not ctx.caller.at_least(Role.clerk):
        raise errors.Forbidden("only box-office staff may ask about another account")
    async with ctx.app.db.read() as conn:
        row = (await conn.execute(select(users.c.disabled).where(
            users.c.id == cmd.id, LIVE))).first()
    return c.AccountState(id=cmd.id, exists=row is not None,
                          active=row is not None and not row.disabled)


@handlers.startup
async def bootstrap_admin(app: App) -> None:
    """The first admin, from TTMS_ADMIN_USERNAME / TTMS_ADMIN_PASSWORD. Never overwritten."""
    settings = app.settings
    for attempt in range(60):
        try:
            async with app.db.read() as conn:
                exists = (await conn.execute(select(users.c.id).where(
                    users.c.username == settings.admin_username))).first()
            if exists:
                return
            caller = Caller(user_id=None, role=None)
            await _create(Context(caller, app), settings.admin_username,
                          settings.admin_password.get_secret_value(), Role.admin, None)
            log.info("created the first admin %r", settings.admin_username)
            return
        except errors.Conflict:
            return  # another process of this service made it first
        except Exception as exc:  # noqa: BLE001 - the database may still be starting
            log.warning("admin bootstrap: %s; retrying", exc)
            await asyncio.sleep(min(1 + attempt, 5))


def _emit_access(tx: Tx, row) -> None:
    tx.emit(c.AccessChanged(user_id=row.id, token_version=row.token_version,
                            active=not row.disabled and row.deleted_at is None))
