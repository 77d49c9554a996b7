"""The audit log (issue 20.6): every staff action that changes money or access — a clerk's
sale on a customer's account, a refund by someone other than the buyer, a show cancelled or
changed, an account changed or deleted by an admin — with who, when, what and from which
address. Made only from the events the services already emit (those carry an ``actor`` when a
staff member did it); entries are only ever inserted, and the API only reads them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select

from messages.contracts import door as d
from messages.contracts import order as c
from messages.contracts import play as p
from messages.contracts import ticket as t
from messages.contracts import user as u
from messages.contracts.base import Actor, Page, utcnow
from messages.db import PlainTx, as_utc, to_db
from messages.service import App
from order_svc.tables import audit_log

_ENTRY = (
    "INSERT INTO audit_log (at, action, actor_id, actor_role, address, subject, details) "
    "VALUES (:at, :action, :actor_id, :actor_role, :address, :subject, :details)")


def _record(tx: PlainTx, actor: Actor | None, action: c.AuditAction, subject: str,
            details: dict[str, Any], at: datetime | None = None) -> None:
    if actor is None:
        return
    tx.later(_ENTRY, {
        "at": to_db(actor.at or at or utcnow()), "action": action.value,
        "actor_id": actor.user_id, "actor_role": actor.role, "address": actor.address,
        "subject": subject, "details": orjson.dumps(details).decode()})


def ticket_held(event: t.TicketHeld, tx: PlainTx) -> None:
    _record(tx, event.actor, c.AuditAction.clerk_sale, f"reservation {event.reservation_id}", {
        "customer_id": event.user_id, "schedule_id": event.schedule_id,
        "seats": [s.model_dump(mode="json") for s in event.seats], "total": event.total,
        "currency": event.currency}, event.created_at)


def ticket_refunded(event: t.TicketRefunded, tx: PlainTx) -> None:
    _record(tx, event.actor, c.AuditAction.refund, f"ticket {event.ticket_id}", {
        "buyer_id": event.user_id, "reservation_id": event.reservation_id,
        "schedule_id": event.schedule_id, "price": event.price, "currency": event.currency},
        event.refunded_at)


def ticket_reissued(event: d.TicketReissued, tx: PlainTx) -> None:
    _record(tx, event.actor, c.AuditAction.code_reissued, f"ticket {event.ticket_id}", {
        "buyer_id": event.user_id, "schedule_id": event.schedule_id,
        "code_version": event.code_version}, event.reissued_at)


def schedule_updated(event: p.ScheduleUpdated, tx: PlainTx) -> None:
    s = event.schedule
    _record(tx, event.actor, c.AuditAction.show_changed, f"schedule {s.id}", {
        "starts_at": s.starts_at.isoformat(), "price": s.price, "prices": s.prices,
        "max_tickets_per_customer": s.max_tickets_per_customer})


def play_updated(event: p.PlayUpdated, tx: PlainTx) -> None:
    """Only a change of what the play's seats cost (its price, its ticket types)."""
    play = event.play
    if {"price", "ticket_types"} & set(event.changed):
        _record(tx, event.actor, c.AuditAction.play_repriced, f"play {play.id}", {
            "changed": event.changed, "price": play.price,
            "ticket_types": [t.model_dump(mode="json") for t in play.ticket_types]})


def schedule_cancelled(event: p.ScheduleCancelled, tx: PlainTx) -> None:
    s = event.schedule
    _record(tx, event.actor, c.AuditAction.show_cancelled, f"schedule {s.id}", {
        "play_id": s.play_id, "starts_at": s.starts_at.isoformat()})


def user_updated(event: u.UserUpdated, tx: PlainTx) -> None:
    user = event.user
    if event.actor is not None and event.actor.user_id == user.id:
        return  # one's own profile is not a staff action
    _record(tx, event.actor, c.AuditAction.user_changed, f"user {user.id}", {
        "username": user.username, "role": user.role.value, "disabled": user.disabled,
        "email": user.email})


def user_deleted(event: u.UserDeleted, tx: PlainTx) -> None:
    _record(tx, event.actor, c.AuditAction.user_deleted, f"user {event.user_id}", {})


def _entry(row) -> c.AuditEntry:
    details = row.details
    if isinstance(details, str | bytes):
        details = orjson.loads(details)
    return c.AuditEntry(id=row.id, at=as_utc(row.at), action=row.action,
                        actor_id=row.actor_id, actor_role=row.actor_role,
                        address=row.address, subject=row.subject, details=details)


async def entries(app: App, cmd: c.ListAudit) -> Page[c.AuditEntry]:
    """Newest first."""
    where = []
    if cmd.action is not None:
        where.append(audit_log.c.action == cmd.action.value)
    if cmd.actor_id is not None:
        where.append(audit_log.c.actor_id == cmd.actor_id)
    return await app.db.page(select(audit_log), audit_log, where,
                             [audit_log.c.at.desc(), audit_log.c.id.desc()], cmd, _entry)
