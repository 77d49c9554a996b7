"""E-tickets drawn for people: a ticket's check-in code as a QR code (SVG, ``messages.qr``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from messages.qr import qr_svg

SVG = "image/svg+xml"


def ticket_qr(ticket: dict[str, Any]) -> web.Response:
    """``GET /tickets/{id}/qr.svg``: a refunded ticket has no code, so no picture (409)."""
    from messages import errors

    if not ticket.get("code"):
        raise errors.TicketRefunded("the ticket was refunded; it has no code")
    return web.Response(body=qr_svg(ticket["code"], title=f"Ticket {ticket['id']}"),
                        content_type=SVG, headers={"Cache-Control": "private, no-store"})
