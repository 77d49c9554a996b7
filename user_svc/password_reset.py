"""Password reset by e-mail: ``POST /auth/password-reset {email}`` mails each account with
that verified address a single-use token valid 30 minutes, and answers 202 whether or not there
is one; ``…/confirm {token, new_password}`` sets the password, ends every reset token of the
account and revokes its access tokens. Requests are limited per address and per client by the
gateway, like sign-in.

No account discovery, also not by timing: answering a request does exactly one thing, insert a
``reset_requests`` row, whatever the address. Whether an account has it is looked up later, by
the mail sender (``resolve_due``), which writes the tokens and queues the mails in the same
transaction that deletes the request: a request is never lost and never mailed twice.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import text

from messages import errors
from messages.contracts import user as c
from messages.contracts.base import utcnow
from messages.db import as_utc, to_db
from messages.service import Context
from user_svc import mails

TOKEN_LIFETIME = timedelta(minutes=30)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def request(ctx: Context, email: str) -> None:
    async with ctx.app.db.transaction() as tx:
        await tx.execute(text(
            "INSERT INTO reset_requests (email, requested_at) VALUES (:email, :now)"),
            {"email": email, "now": to_db(utcnow())})


async def resolve_due(app, batch: int = 50) -> int:
    """Turn waiting requests into tokens and queued mails; how many requests were taken.
    Processes side by side take different requests (``SKIP LOCKED``)."""
    now = utcnow()
    async with app.db.transaction() as tx:
        requests = (await tx.execute(text(
            "SELECT id, email FROM reset_requests ORDER BY id LIMIT :n "
            "FOR UPDATE SKIP LOCKED"), {"n": batch})).all()
        for asked in requests:
            accounts = (await tx.execute(text(
                "SELECT id, username, email, language FROM users WHERE email = :email "
                "AND email_verified AND deleted_at IS NULL AND NOT disabled"),
                {"email": asked.email})).all()
            for user in accounts:
                token = secrets.token_urlsafe(32)
                await tx.execute(text(
                    "INSERT INTO reset_tokens (token_hash, user_id, expires_at) "
                    "VALUES (:hash, :id, :expires)"),
                    {"hash": _hash(token), "id": user.id,
                     "expires": to_db(now + TOKEN_LIFETIME)})
                await mails.queue(tx, f"reset:{_hash(token)}", user.email,
                                  user.language or app.settings.mail_language, "reset",
                                  username=user.username, token=token)
            await tx.execute(text("DELETE FROM reset_requests WHERE id = :id"),
                             {"id": asked.id})
    return len(requests)


async def confirm(ctx: Context, token: str, new_password: str, hash_password) -> int:
    """Set the password of the token's account; its id (the caller revokes its tokens)."""
    async with ctx.app.db.read() as conn:
        row = (await conn.execute(text(
            "SELECT user_id, expires_at, used_at FROM reset_tokens WHERE token_hash = :hash"),
            {"hash": _hash(token)})).first()
    invalid = errors.ValidationFailed("the reset token is invalid, used or expired", [
        errors.invalid(["body", "token"], "token_invalid", "invalid, used or expired")])
    if row is None or row.used_at is not None or as_utc(row.expires_at) <= utcnow():
        raise invalid
    new_hash = await hash_password(new_password)
    async with ctx.app.db.transaction() as tx:
        # Ends every token of the account, this one included; only one confirm wins.
        ended = await tx.execute(text(
            "UPDATE reset_tokens SET used_at = :now WHERE user_id = :id AND used_at IS NULL"),
            {"id": row.user_id, "now": to_db(utcnow())})
        still = (await tx.execute(text(
            "SELECT used_at FROM reset_tokens WHERE token_hash = :hash"),
            {"hash": _hash(token)})).first()
        if ended.rowcount == 0 or still is None:
            raise invalid
        await tx.execute(text(
            "UPDATE users SET password_hash = :hash, token_version = token_version + 1 "
            "WHERE id = :id AND deleted_at IS NULL"), {"hash": new_hash, "id": row.user_id})
        user = (await tx.execute(text(
            "SELECT token_version, disabled, deleted_at FROM users WHERE id = :id"),
            {"id": row.user_id})).first()
        # Every access token issued before stops working (as after a password change).
        tx.emit(c.AccessChanged(user_id=row.user_id, token_version=user.token_version,
                                active=not user.disabled and user.deleted_at is None))
    return row.user_id
