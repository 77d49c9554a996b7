"""The mail outbox's sender: every ``TTMS_MAIL_POLL_SECONDS`` it takes the mails that are
due (``FOR UPDATE SKIP LOCKED``: user_svc processes side by side take different ones), sends
them over SMTP with ``aiosmtplib`` (``TTMS_SMTP_*``), and marks each sent once the server
accepted it. A mail the server did not take waits and is tried again, with backoff doubling
up to ``TTMS_MAIL_RETRY_MAX_SECONDS``, for as long as it takes: an SMTP server down for a
while loses nothing. A mail that cannot be sent at all (the library refuses it before any
server sees it) is marked ``failed`` with the reason, so that it never holds up the others.
Each mail keeps one ``Message-ID`` across tries, so in the one case a mail can go twice (a
crash between the server's "250 OK" and our commit) a reader's client shows it once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib
import orjson
from sqlalchemy import text

from messages.contracts.base import utcnow
from messages.db import to_db
from messages.service import App
from messages.settings import Settings

log = logging.getLogger("ttms.mail")
BATCH = 20

DUE = text(
    "SELECT id, to_addr, subject, body, tries FROM mails WHERE status = 'pending' "
    "AND next_try_at <= :now ORDER BY next_try_at, id LIMIT :n FOR UPDATE SKIP LOCKED")
# A mail that cannot be sent as written (an address SMTP refuses to carry, from before the
# contract refused it): kept, with why, and never tried again.
FAILED = text("UPDATE mails SET status = 'failed', tries = tries + 1, last_error = :error "
              "WHERE id = :id")
SENT = text("UPDATE mails SET status = 'sent', sent_at = :now, tries = tries + 1, "
            "last_error = NULL WHERE id = :id")
LATER = text("UPDATE mails SET tries = tries + 1, next_try_at = :next, last_error = :error "
             "WHERE id = :id")


def message(settings: Settings, row) -> EmailMessage:
    body = orjson.loads(row.body)
    mail = EmailMessage()
    mail["From"] = settings.mail_from
    mail["To"] = row.to_addr
    mail["Subject"] = row.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = f"<ttms-mail-{row.id}@{settings.namespace}.ttms>"
    mail.set_content(body["text"])
    mail.add_alternative(body["html"], subtype="html")
    for attachment in body.get("attachments", []):
        maintype, subtype = attachment["content_type"].split("/", 1)
        mail.add_attachment(attachment["content"].encode(), maintype=maintype,
                            subtype=subtype, filename=attachment["filename"])
    return mail


def backoff(tries: int, most: float) -> float:
    """Seconds before the next try of a mail tried ``tries`` times: 1, 2, 4, … up to ``most``,
    with jitter so that many waiting mails do not all come back at once."""
    return min(most, 2.0 ** max(0, tries)) * random.uniform(0.8, 1.0)


async def send_due(app: App) -> int:
    """Send the mails that are due; how many were taken (sent or put back for later)."""
    settings = app.settings
    now = utcnow()
    async with app.db.transaction() as tx:
        rows = (await tx.execute(DUE, {"now": to_db(now), "n": BATCH})).all()
        if not rows:
            return 0
        smtp = aiosmtplib.SMTP(hostname=settings.smtp_host, port=settings.smtp_port,
                               timeout=settings.smtp_timeout_seconds,
                               start_tls=settings.smtp_starttls or None)
        error: str | None = None
        try:
            await smtp.connect()
            if settings.smtp_user:
                await smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            error = f"connect: {exc}"
        for row in rows:
            failure = error
            if failure is None:
                try:
                    await smtp.send_message(message(settings, row))
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    failure = str(exc)
                except Exception as exc:  # noqa: BLE001 - this mail only; the batch goes on
                    log.error("mail %s cannot be sent as written, and never will: %r",
                              row.id, exc)
                    await tx.execute(FAILED, {"id": row.id, "error": repr(exc)[:300]})
                    continue
            if failure is None:
                await tx.execute(SENT, {"id": row.id, "now": to_db(utcnow())})
            else:
                wait = backoff(row.tries, settings.mail_retry_max_seconds)
                await tx.execute(LATER, {"id": row.id, "error": failure[:300],
                                         "next": to_db(now + timedelta(seconds=wait))})
        if error is None:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                pass
        if error is not None:
            log.warning("SMTP %s:%s unavailable (%s); %d mail(s) wait", settings.smtp_host,
                        settings.smtp_port, error, len(rows))
    return len(rows)


async def send_forever(app: App, compose: Callable[[App], Awaitable[int]]) -> None:
    """Each round, ``compose`` writes the mails asked for but not yet written (password
    resets), then the due mails are sent."""
    while True:
        try:
            await compose(app)
            taken = await send_due(app)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the database may be away; try again later
            log.warning("mail sender: %s", exc)
            taken = 0
        if taken < BATCH:
            await asyncio.sleep(app.settings.mail_poll_seconds)
