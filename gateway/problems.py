"""Errors as RFC 9457 problem+json, with the contract's stable codes."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from messages import errors

CONTENT_TYPE = "application/problem+json"


def problem(error: errors.ServiceError) -> web.Response:
    body: dict[str, Any] = {
        "type": f"urn:ttms:problem:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.message,
        "code": error.code,
    }
    if error.details or error.code == "seat_unavailable":  # a best-available hold: []
        body["errors"] = error.details
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return web.Response(body=orjson.dumps(body), status=error.status, headers=headers,
                        content_type=CONTENT_TYPE)


def from_http(exc: web.HTTPException) -> errors.ServiceError:
    """aiohttp's own refusals (no such route, wrong method, body too large) in our terms."""
    if exc.status == 404:
        return errors.NotFound("no such resource")
    if exc.status == 413:
        return errors.BadRequest("the request body is too large")
    error = errors.BadRequest(exc.reason)
    error.status = exc.status  # 405 and friends keep their status, with code bad_request
    return error
