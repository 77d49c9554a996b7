"""Seat-map streams: ``GET /schedules/{id}/seats/stream`` (Server-Sent Events).

A stream starts with a ``snapshot`` event (the seat map, ``id`` its version), or, with a
``Last-Event-ID`` this process still has the history for, the ``changes`` since that version;
then ``changes`` events, coalesced: at most one per ``COALESCE_SECONDS``; a comment as
keep-alive after ``TTMS_SEAT_STREAM_KEEPALIVE_SECONDS`` of quiet. A request that does not
accept ``text/event-stream`` gets the snapshot event alone.

Thousands of people watch one show during an on-sale, so the streams of a show are written by
one task (``_broadcast``), not one each: per round it builds each event once (one per
version the streams are at: all of them but those that just joined are at the same one) and
hands the same bytes, framed once, to every stream's transport. A stream whose reader lags
more than ``SLOW_BYTES`` behind is closed (a browser's EventSource comes back by itself with
``Last-Event-ID``); a closed page is noticed within ``CHECK_SECONDS`` and its stream released
(``ttms_seat_streams`` at ``/metrics`` counts those open).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiohttp import HttpVersion11, web

from gateway.seatmaps import STATUS, SeatMaps, Show
from messages import errors

log = logging.getLogger("ttms.gateway.seats")

COALESCE_SECONDS = 0.1   # at most one `changes` event per this long
CHECK_SECONDS = 1.0      # how soon a closed page is noticed while nothing changes
SLOW_BYTES = 1 << 20     # a reader this far behind is closed (and comes back, resuming)
KEEP_ALIVE = b": keep-alive\n\n"


class Stream:
    """One open stream: its connection, and the version it has been sent."""

    __slots__ = ("chunked", "done", "quiet_since", "sent", "transport")

    def __init__(self, transport: asyncio.Transport, chunked: bool, sent: int) -> None:
        self.transport = transport
        self.chunked = chunked          # HTTP/1.1: each write is a chunk of the body
        self.sent = sent
        self.quiet_since = time.monotonic()
        self.done = asyncio.get_running_loop().create_future()  # the stream has ended

    def end(self, show: Show) -> None:
        show.streams.discard(self)
        if not self.done.done():
            self.done.set_result(None)


def _event(kind: str, version: int, data: Any) -> bytes:
    return b"event: %s\nid: %d\ndata: %s\n\n" % (kind.encode(), version, orjson.dumps(data))


def _frame(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data) if chunked else data


def _changes_since(show: Show, sent: int) -> bytes | None:
    """One ``changes`` event for every version after ``sent`` (each seat's last status), or
    None when the show's history no longer reaches back to ``sent`` (a snapshot came between,
    or too much happened): then the stream sends a snapshot."""
    history = show.history
    if not history or history[0][0] > sent + 1 or history[-1][0] != show.version:
        return None
    seats: dict[tuple[int, int], str] = {}
    for version, changes in history:
        if version > sent:
            for row, col, code in changes:
                seats[row, col] = code
    return _event("changes", show.version, {"version": show.version, "seats": [
        {"row": r, "col": col, "status": STATUS[ord(code)]} for (r, col), code in seats.items()]})


def _catch_up(show: Show, sent: int) -> bytes:
    """What a stream at version ``sent`` is sent to reach the show's version."""
    return _changes_since(show, sent) or _event("snapshot", show.version, show.document())


async def seat_stream(request: web.Request, maps: SeatMaps) -> web.StreamResponse:
    sid = int(request.match_info["id"])
    show = await maps.get(sid)
    live = "text/event-stream" in request.headers.get("Accept", "")
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    chunked = request.version >= HttpVersion11
    if chunked:
        response.enable_chunked_encoding()
    show.watchers += 1
    stream: Stream | None = None
    try:
        await response.prepare(request)
        last = request.headers.get("Last-Event-ID", "")
        if live and last.isdecimal() and int(last) <= show.version:
            sent = int(last)
            if sent < show.version:
                await response.write(_catch_up(show, sent))
        else:
            await response.write(_event("snapshot", show.version, show.document()))
        sent = show.version  # what was written is at least this (no await since it)
        if not live:
            await response.write_eof()
            return response
        if request.transport is None:  # gone already
            return response
        stream = Stream(request.transport, chunked, sent)
        show.streams.add(stream)
        if show.broadcaster is None or show.broadcaster.done():
            show.broadcaster = asyncio.ensure_future(_broadcast(show, maps))
        await stream.done
    except ConnectionResetError:
        pass  # the page was closed
    finally:
        show.watchers -= 1
        if stream is not None:
            stream.end(show)
    return response


async def _broadcast(show: Show, maps: SeatMaps) -> None:
    """Write every change of ``show`` to its streams until none is left."""
    try:
        while show.streams:
            if all(stream.sent == show.version for stream in show.streams):
                try:
                    await asyncio.wait_for(show.changed.wait(), CHECK_SECONDS)
                    await asyncio.sleep(COALESCE_SECONDS)  # gather what comes with it
                except TimeoutError:
                    pass
            if show.stale and maps.shows.get(show.id) is show:
                try:
                    await maps.get(show.id)  # a fresh snapshot, shared with the readers
                except errors.ServiceError:  # tried again in a second; the streams wait
                    await asyncio.sleep(CHECK_SECONDS)
                    continue
            _write_round(show, maps.keep_alive)
    except Exception:
        log.exception("seat-map streams of show %s", show.id)
    finally:
        for stream in list(show.streams):  # ended: the readers come back (Last-Event-ID)
            stream.transport.close()
            stream.end(show)


def _write_round(show: Show, keep_alive: float) -> None:
    """Bring every stream of the show to its version; keep quiet ones alive; let go of the
    closed and the too slow. Each event is built and framed once per round."""
    now = time.monotonic()
    version = show.version
    framed: dict[tuple[int, bool], bytes] = {}  # (version sent, chunked) → what to write
    for stream in list(show.streams):
        transport = stream.transport
        if transport.is_closing():
            stream.end(show)
            continue
        if stream.sent == version and now - stream.quiet_since < keep_alive:
            continue
        out = framed.get(key := (stream.sent, stream.chunked))
        if out is None:
            out = framed[key] = _frame(KEEP_ALIVE if stream.sent == version
                                       else _catch_up(show, stream.sent), stream.chunked)
        if transport.get_write_buffer_size() > SLOW_BYTES:
            transport.close()
            stream.end(show)
            continue
        transport.write(out)
        stream.sent = version
        stream.quiet_since = now
