"""QR codes (``segno``): a ticket's check-in code drawn as SVG, for the gateway's
``/tickets/{id}/qr.svg`` and the ticket mail's attachments alike."""

from __future__ import annotations

import io

import segno


def qr_svg(data: str, *, scale: int = 4, title: str | None = None) -> bytes:
    """``data`` as a QR code, error correction M (a scuffed phone screen still reads)."""
    out = io.BytesIO()
    segno.make(data, error="m", micro=False, boost_error=False).save(
        out, kind="svg", scale=scale, border=4, xmldecl=False, title=title)
    return out.getvalue()
