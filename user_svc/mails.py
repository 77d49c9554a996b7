"""What TTMS says by e-mail, in English and Simplified Chinese, as text and HTML, and how a
mail is queued: one row of the ``mails`` outbox per (event, recipient), written in the
transaction of what it tells, so it is never lost and never written twice (``mailer`` sends
it).
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text

from messages.contracts.base import utcnow
from messages.db import Tx, to_db

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "verify.subject": "Your TTMS verification code",
        "verify.body": "Hello {username},\n\nyour code to verify {email} is {code}. It is "
                       "valid for 15 minutes.\n\nIf you did not ask for it, ignore this mail.",
        "reset.subject": "Reset your TTMS password",
        "reset.body": "Hello {username},\n\nsomeone (we hope you) asked to reset your "
                      "password. Your reset token, valid for 30 minutes and usable once:\n\n"
                      "{token}\n\nIf it was not you, ignore this mail: nothing changes.",
        "sold.subject": "Your tickets for {play_name}",
        "sold.body": "Hello {username},\n\nthank you for your purchase (order {order_id}, "
                     "{total}). {play_name}, {starts_at} UTC.\n\n{tickets}\n\nShow each "
                     "ticket's QR code (attached) at the door.",
        "sold.ticket": "Ticket {ticket_id}: row {row}, seat {col}, {price} — code {code}",
        "refund.subject": "Ticket {ticket_id} refunded",
        "refund.body": "Hello {username},\n\nticket {ticket_id} (row {row}, seat {col}) was "
                       "refunded: {price}. Its code no longer admits.",
        "cancelled.subject": "Show cancelled: ticket {ticket_id} refunded",
        "cancelled.body": "Hello {username},\n\nthe show of ticket {ticket_id} (row {row}, "
                          "seat {col}) was cancelled; the ticket is refunded: {price}.",
        "reminder.subject": "Soon: {play_name}, {starts_at} UTC",
        "reminder.body": "Hello {username},\n\n{play_name} starts at {starts_at} UTC. Your "
                         "seats: {seats}.\n\nShow each ticket's QR code at the door: it is in "
                         "your purchase mail and on each ticket's page in My tickets.",
        "reminder.seat": "row {row}, seat {col}",
        "reissued.subject": "New code for ticket {ticket_id}",
        "reissued.body": "Hello {username},\n\nticket {ticket_id} ({play_name}, {starts_at} "
                         "UTC, row {row}, seat {col}) has a new code: {code}\n\nShow its new "
                         "QR code (attached) at the door; the old code no longer admits.",
    },
    "zh": {
        "verify.subject": "您的 TTMS 验证码",
        "verify.body": "{username}，您好：\n\n用于验证 {email} 的验证码是 {code}，15 分钟内有效。"
                       "\n\n如果这不是您的操作，请忽略本邮件。",
        "reset.subject": "重置您的 TTMS 密码",
        "reset.body": "{username}，您好：\n\n有人（希望是您）申请重置密码。重置令牌 30 分钟内"
                      "有效，只能使用一次：\n\n{token}\n\n如果这不是您的操作，请忽略本邮件，"
                      "您的密码不会改变。",
        "sold.subject": "您购买的《{play_name}》门票",
        "sold.body": "{username}，您好：\n\n感谢您的购买（订单 {order_id}，{total}）。"
                     "《{play_name}》，{starts_at} UTC。\n\n{tickets}\n\n入场时请出示每张票的"
                     "二维码（见附件）。",
        "sold.ticket": "门票 {ticket_id}：{row} 排 {col} 座，{price}，票码 {code}",
        "refund.subject": "门票 {ticket_id} 已退款",
        "refund.body": "{username}，您好：\n\n门票 {ticket_id}（{row} 排 {col} 座）已退款："
                       "{price}。该票码不再有效。",
        "cancelled.subject": "演出取消：门票 {ticket_id} 已退款",
        "cancelled.body": "{username}，您好：\n\n门票 {ticket_id}（{row} 排 {col} 座）的演出"
                          "已取消，门票已退款：{price}。",
        "reminder.subject": "即将开演：《{play_name}》，{starts_at} UTC",
        "reminder.body": "{username}，您好：\n\n《{play_name}》将于 {starts_at} UTC 开演。"
                         "您的座位：{seats}。\n\n入场时请出示每张票的二维码：见购票邮件，"
                         "或“我的票”中每张票的页面。",
        "reminder.seat": "{row} 排 {col} 座",
        "reissued.subject": "门票 {ticket_id} 的新票码",
        "reissued.body": "{username}，您好：\n\n门票 {ticket_id}（《{play_name}》，{starts_at} "
                         "UTC，{row} 排 {col} 座）已换发新票码：{code}\n\n入场时请出示新的二维码"
                         "（见附件）；旧票码不再有效。",
    },
}


def money(amount: int, currency: str) -> str:
    return f"{amount / 100:.2f} {currency}"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def render(language: str, kind: str, **facts: Any) -> tuple[str, str, str]:
    """(subject, text, html) of a mail ``kind`` in ``language`` (en | zh)."""
    texts = TEXTS.get(language) or TEXTS["en"]
    subject = texts[f"{kind}.subject"].format(**facts)
    body = texts[f"{kind}.body"].format(**facts)
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                         for p in body.split("\n\n"))
    lang = "zh-Hans" if language == "zh" else "en"
    page = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>{html.escape(subject)}</title></head><body>{paragraphs}</body></html>")
    return subject, body, page


INSERT = text(
    "INSERT IGNORE INTO mails (mail_key, to_addr, subject, body, status, tries, next_try_at, "
    "created_at) VALUES (:key, :to, :subject, :body, 'pending', 0, :now, :now)")


async def queue(tx: Tx, key: str, to: str, language: str, kind: str,
                attachments: list[dict[str, str]] | None = None, **facts: Any) -> None:
    """Write a mail to the outbox in ``tx``; a second one with the same ``key`` is ignored.
    ``attachments``: ``[{filename, content_type, content}]`` (text content, e.g. SVG)."""
    subject, body, page = render(language, kind, **facts)
    now = to_db(utcnow())
    await tx.execute(INSERT, {
        "key": key[:120], "to": to, "subject": subject[:300], "now": now,
        "body": orjson.dumps({"text": body, "html": page,
                              "attachments": attachments or []}).decode()})
