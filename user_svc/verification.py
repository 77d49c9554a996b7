"""Account e-mail verification: registering with an address, or changing it, mails a 6-digit
code; ``POST /users/me/email/verify`` with it marks the address verified. One live code per
account (a new one replaces it), kept hashed, valid 15 minutes, 5 tries."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import text

from messages import errors
from messages.contracts.base import utcnow
from messages.db import Tx, as_utc, to_db
from messages.service import App, Context
from user_svc import mails

CODE_LIFETIME = timedelta(minutes=15)
MAX_TRIES = 5


def _hash(app: App, user_id: int, code: str) -> str:
    key = app.settings.jwt_secret.get_secret_value().encode()
    return hmac.new(key, f"{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


async def send_code(tx: Tx, app: App, user) -> None:
    """A new code for ``user``'s address (a users row), mailed in ``tx``."""
    code = f"{secrets.randbelow(10**6):06d}"
    now = utcnow()
    await tx.execute(text(
        "REPLACE INTO email_codes (user_id, email, code_hash, tries, expires_at) "
        "VALUES (:id, :email, :hash, 0, :expires)"),
        {"id": user.id, "email": user.email, "hash": _hash(app, user.id, code),
         "expires": to_db(now + CODE_LIFETIME)})
    await mails.queue(tx, f"verify:{user.id}:{secrets.token_hex(8)}", user.email,
                      user.language or app.settings.mail_language, "verify",
                      username=user.username, email=user.email, code=code)


async def verify(ctx: Context, code: str) -> None:
    user_id = ctx.caller.require_signed_in()
    wrong = errors.ValidationFailed("the code is wrong or has expired", [
        errors.invalid(["body", "code"], "code_invalid", "wrong or expired code")])
    async with ctx.app.db.transaction() as tx:
        row = (await tx.execute(text(
            "SELECT c.email, c.code_hash, c.tries, c.expires_at, u.email AS current "
            "FROM email_codes c JOIN users u ON u.id = c.user_id "
            "WHERE c.user_id = :id FOR UPDATE"), {"id": user_id})).first()
        if row is None or row.email != row.current or as_utc(row.expires_at) <= utcnow():
            raise wrong
        if not hmac.compare_digest(row.code_hash, _hash(ctx.app, user_id, code)):
            # The try counts (committed), and the answer is a refusal.
            if row.tries + 1 >= MAX_TRIES:  # used up: a new code is needed
                await tx.execute(text("DELETE FROM email_codes WHERE user_id = :id"),
                                 {"id": user_id})
            else:
                await tx.execute(text(
                    "UPDATE email_codes SET tries = tries + 1 WHERE user_id = :id"),
                    {"id": user_id})
        else:
            await tx.execute(text("DELETE FROM email_codes WHERE user_id = :id"),
                             {"id": user_id})
            await tx.execute(text("UPDATE users SET email_verified = TRUE WHERE id = :id"),
                             {"id": user_id})
            return
    raise wrong
