"""E-tickets drawn for people: a ticket's check-in code as a QR code (SVG, with ``segno``)."""

from __future__ import annotations

import io
from typing import Any

import segno
from aiohttp import web

SVG = "image/svg+xml"


def qr_svg(code: str, *, scale: int = 4, title: str | None = None) -> bytes:
    """The code as a QR code, error correction M (a scuffed phone screen still reads)."""
    out = io.BytesIO()
    segno.make(code, error="m", micro=False, boost_error=False).save(
        out, kind="svg", scale=scale, border=4, xmldecl=False, title=title)
    return out.getvalue()


def ticket_qr(ticket: dict[str, Any]) -> web.Response:
    """``GET /tickets/{id}/qr.svg``: a refunded ticket has no code, so no picture (409)."""
    from messages import errors

    if not ticket.get("code"):
        raise errors.TicketRefunded("the ticket was refunded; it has no code")
    return web.Response(body=qr_svg(ticket["code"], title=f"Ticket {ticket['id']}"),
                        content_type=SVG, headers={"Cache-Control": "private, no-store"})
