"""Ticket mail, from ticket_svc's events: after a payment the buyer gets each ticket with its
check-in code and QR code (an SVG attachment); a refund, a cancelled show's refunds, a
ticket's new code and a reminder before the show are told too. Only to a verified address, in
the buyer's language. A box-office sale names the customer as buyer, so the customer's account
address gets it. The mail row is written in the event's inbox transaction, keyed by the
event's subject: never twice for one event."""

from __future__ import annotations

from sqlalchemy import text

from messages.contracts import door as d
from messages.contracts import ticket as t
from messages.db import Tx
from messages.qr import qr_svg
from messages.service import App
from user_svc import mails


async def _buyer(tx: Tx, user_id: int):
    return (await tx.execute(text(
        "SELECT id, username, email, language FROM users WHERE id = :id AND email_verified "
        "AND email IS NOT NULL AND deleted_at IS NULL"), {"id": user_id})).first()


def _qr_attachment(ticket_id: int, code: str) -> dict[str, str]:
    """A ticket's check-in code as its QR code, an SVG attachment."""
    return {"filename": f"ticket-{ticket_id}.svg", "content_type": "image/svg+xml",
            "content": qr_svg(code, title=f"Ticket {ticket_id}").decode()}


async def sold(event: t.TicketSold, tx: Tx, app: App) -> None:
    buyer = await _buyer(tx, event.user_id)
    if buyer is None:
        return
    language = buyer.language or app.settings.mail_language
    lines = [mails.TEXTS[language]["sold.ticket"].format(
        ticket_id=s.ticket_id, row=s.row, col=s.col, price=mails.money(s.price, event.currency),
        code=s.code or "-") for s in event.tickets]
    attachments = [_qr_attachment(s.ticket_id, s.code) for s in event.tickets if s.code]
    await mails.queue(tx, f"sold:{event.reservation_id}", buyer.email, language, "sold",
                      attachments=attachments, username=buyer.username,
                      play_name=event.play_name, order_id=event.reservation_id,
                      total=mails.money(event.total, event.currency),
                      starts_at=mails.when(event.starts_at), tickets="\n".join(lines))


async def refunded(event: t.TicketRefunded, tx: Tx, app: App) -> None:
    buyer = await _buyer(tx, event.user_id)
    if buyer is None:
        return
    kind = "cancelled" if event.reason == "show_cancelled" else "refund"
    await mails.queue(tx, f"refund:{event.ticket_id}", buyer.email,
                      buyer.language or app.settings.mail_language, kind,
                      username=buyer.username, ticket_id=event.ticket_id, row=event.row,
                      col=event.col, price=mails.money(event.price, event.currency))


async def reissued(event: d.TicketReissued, tx: Tx, app: App) -> None:
    buyer = await _buyer(tx, event.user_id)
    if buyer is None:
        return
    await mails.queue(tx, f"reissued:{event.ticket_id}:{event.code_version}", buyer.email,
                      buyer.language or app.settings.mail_language, "reissued",
                      attachments=[_qr_attachment(event.ticket_id, event.code)],
                      username=buyer.username,
                      ticket_id=event.ticket_id, play_name=event.play_name,
                      starts_at=mails.when(event.starts_at), row=event.row, col=event.col,
                      code=event.code)


async def reminder(event: t.ShowReminder, tx: Tx, app: App) -> None:
    buyer = await _buyer(tx, event.user_id)
    if buyer is None:
        return
    language = buyer.language or app.settings.mail_language
    seats = ", ".join(mails.TEXTS[language]["reminder.seat"].format(row=s.row, col=s.col)
                      for s in event.tickets)
    await mails.queue(tx, f"reminder:{event.schedule_id}:{event.user_id}", buyer.email,
                      language, "reminder", username=buyer.username,
                      play_name=event.play_name, starts_at=mails.when(event.starts_at),
                      seats=seats)
