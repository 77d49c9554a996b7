"""Live seat maps: each show someone reads is kept in this gateway process's memory, built from
one snapshot (``ticket.seat_snapshot``) and then ticket_svc's ``ticket.*`` events, applied in
the order of the show's seat-map version (``ticket_svc.versions``).

- An event whose version is the next one is applied; an older one is ignored; a newer one
  waits (``pending``) for those before it, and a gap that stays open for ``GAP_SECONDS``, an
  event without a version, a broker connection lost or made again, or an edit of the show
  (``ticket.show_changed``: a new price) make the show *stale*: its next read takes a fresh
  snapshot. A snapshot older than what the show already shows is not taken: no reader is
  answered an older state after a newer one.
- Read your writes: the answer of a hold, payment, cancellation or refund made through this
  process carries the show's new version (``wrote``); the next read of the show waits for that
  version's event (at most ``WAIT_SECONDS``), else takes a snapshot.
- Shows unread for ``IDLE_SECONDS`` (and with no stream open) are forgotten, and at most
  ``MAX_SHOWS`` are kept (the least recently read go first). A show costs one byte per
  position for its state, plus its answer (JSON and gzip) built once per version when read.
- ``GET /schedules/{id}/seats`` is answered from here, with ``version``, an ``ETag`` of the
  version (304 to a matching ``If-None-Match``) and gzip when asked, each built once per
  version however many read it.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

import brotli
import orjson
from aiohttp import web

from gateway import metrics
from gateway.auth import ANONYMOUS
from messages import errors
from messages.contracts import ticket as c
from messages.contracts.base import Envelope

log = logging.getLogger("ttms.gateway.seats")

GAP_SECONDS = 0.5       # a missing version that long means a fresh snapshot
WAIT_SECONDS = 0.5      # a reader's own write's event, waited for before a snapshot
IDLE_SECONDS = 120.0    # a show nobody read that long is forgotten
MAX_SHOWS = 2_000
SNAPSHOT_TIMEOUT = 10.0
GZIP_LEVEL = 6
BROTLI_QUALITY = 5      # once per version: ~8 ms for 10,000 places here (gzip 6: ~12 ms)
SALES_CLOSE_MARGIN = timedelta(seconds=5)  # this near the cutoff, ticket_svc answers every hold
HISTORY = 1_000         # changes kept per show, for streams that resume (Last-Event-ID)

STATUS = {ord(k): v for k, v in c.SEAT_CODES.items()}
EVENTS = ["ticket.held", "ticket.sold", "ticket.released", "ticket.refunded",
          "ticket.show_changed"]

Changes = list[tuple[int, int, str]]  # (row, col, code)


class Show:
    __slots__ = ("bodies", "broadcaster", "changed", "codes", "cols", "headers", "history", "id",
                 "last_read", "no_single_gaps", "pending", "price", "rows", "sales_close_at",
                 "stale", "streams", "version", "watchers", "zone_at", "zone_prices")

    def __init__(self, snap: c.SeatSnapshot) -> None:
        self.id = snap.schedule_id
        self.rows, self.cols, self.price = snap.rows, snap.cols, snap.price
        self.no_single_gaps = snap.no_single_gaps
        self.sales_close_at = snap.sales_close_at
        # Zones change only with a snapshot (a show's prices: ticket.show_changed), so they
        # are kept as they came: each position's zone, and each zone's price.
        self.zone_at: dict[int, str] = {at: zone for zone, ats in snap.zones.items()
                                        for at in ats}
        self.zone_prices = snap.prices
        self.version = snap.version
        self.codes = bytearray(snap.codes.encode())
        self.pending: dict[int, Changes] = {}
        self.stale = False
        self.last_read = time.monotonic()
        self.bodies: dict[str, bytes] = {}        # "json"/"gzip" → the answer at `version`
        self.headers: dict[str, dict[str, str]] = {}  # and its headers
        self.changed = asyncio.Event()            # set, and replaced, at each new version
        self.history: list[tuple[int, Changes]] = []
        self.watchers = 0                         # streams open on the show
        self.streams: set = set()                 # those live (gateway.seatstreams)
        self.broadcaster: asyncio.Task | None = None  # the task that writes to them

    def apply(self, changes: Changes) -> None:
        cols = self.cols
        for row, col, code in changes:
            if 1 <= row <= self.rows and 1 <= col <= cols:
                self.codes[(row - 1) * cols + col - 1] = ord(code)

    def advanced(self, version: int, changes: Changes | None) -> None:
        """The show is now at ``version`` (``changes`` applied, or None: a snapshot)."""
        self.version = version
        self.bodies, self.headers = {}, {}
        if changes is None:
            self.history = []
        else:
            self.history.append((version, changes))
            if len(self.history) > HISTORY:
                del self.history[:len(self.history) - HISTORY]
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def seats(self) -> list[dict[str, Any]]:
        out, cols, price = [], self.cols, self.price
        zone_at, zone_prices = self.zone_at, self.zone_prices
        for i, code in enumerate(self.codes):
            if code != 45:  # "-": no position there
                zone = zone_at.get(i)
                out.append({"row": i // cols + 1, "col": i % cols + 1, "status": STATUS[code],
                            "price": zone_prices.get(zone, price) if zone else price,
                            "zone": zone})
        return out

    def document(self) -> dict[str, Any]:
        return {"schedule_id": self.id, "rows": self.rows, "cols": self.cols,
                "available": self.codes.count(b"a"), "version": self.version,
                "no_single_gaps": self.no_single_gaps, "seats": self.seats()}

    def answer(self, encoding: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of ``GET …/seats`` at this version in ``encoding``."""
        headers = self.headers.get(encoding)
        if headers is None:
            headers = self.headers[encoding] = {
                "Content-Type": "application/json", "ETag": f'"{self.id}.{self.version}"',
                "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
            if encoding != "json":
                headers["Content-Encoding"] = encoding
        return self.body(encoding), headers

    def body(self, encoding: str) -> bytes:
        """The answer at this version, built once per version and encoding."""
        body = self.bodies.get(encoding)
        if body is None:
            raw = self.bodies.get("json")
            if raw is None:
                raw = self.bodies["json"] = orjson.dumps(self.document())
            if encoding == "br":
                body = brotli.compress(raw, quality=BROTLI_QUALITY)
            elif encoding == "gzip":
                body = gzip.compress(raw, GZIP_LEVEL, mtime=0)
            else:
                body = raw
            self.bodies[encoding] = body
        return body


def changes_of(envelope: Envelope) -> Changes:
    data = envelope.data
    kind = envelope.type
    if kind == "ticket.held":
        return [(s["row"], s["col"], "h") for s in data["seats"]]
    if kind == "ticket.sold":
        return [(t["row"], t["col"], "s") for t in data["tickets"]]
    if kind == "ticket.released":
        return [(s["row"], s["col"], "a") for s in data["seats"]]
    return [(data["row"], data["col"], "a")]  # ticket.refunded


class SeatMaps:
    def __init__(self, rpc, keep_alive: float = 15.0) -> None:
        self.rpc = rpc
        self.keep_alive = keep_alive             # seconds of a quiet stream before a comment
        self.shows: OrderedDict[int, Show] = OrderedDict()
        self.floor: dict[int, int] = {}          # versions this process's writes answered
        # Its writes that freed seats, not seen yet: per show, (version, the seat freed, or
        # None when the answer does not say which: a cancelled hold).
        self.freed: dict[int, list[tuple[int, tuple[int, int] | None]]] = {}
        self._fetching: dict[int, asyncio.Future] = {}
        self._early: dict[int, dict[int, Changes]] = {}  # events during a first snapshot
        self._last_sweep = time.monotonic()

    # -- what comes in: events, the broker's connection, this process's writes --------------

    def on_event(self, envelope: Envelope) -> None:
        data = envelope.data
        sid = data["schedule_id"]
        show = self.shows.get(sid)
        version = data.get("seats_version")
        if envelope.type == "ticket.show_changed":  # the price or the rules: a snapshot
            if show is not None and version > show.version:
                show.stale = True
                if show.watchers:
                    asyncio.ensure_future(self._refresh(sid))
            return
        if show is None:
            if sid in self._fetching and version is not None:
                self._early.setdefault(sid, {})[version] = changes_of(envelope)
            return
        if version is None:  # from a ticket_svc that does not number its changes
            show.stale = True
            return
        if version <= show.version:
            return
        show.pending[version] = changes_of(envelope)
        self._drain(show)
        if show.pending:
            asyncio.get_running_loop().call_later(GAP_SECONDS, self._gap_check, show,
                                                  show.version)

    def _drain(self, show: Show) -> None:
        while (changes := show.pending.pop(show.version + 1, None)) is not None:
            show.apply(changes)
            show.advanced(show.version + 1, changes)
        for version in [v for v in show.pending if v <= show.version]:
            del show.pending[version]

    def _gap_check(self, show: Show, version: int) -> None:
        if show.pending and show.version == version:
            log.info("show %s: version %s missing; taking a fresh snapshot", show.id,
                     version + 1)
            show.stale = True
            if show.watchers:
                asyncio.ensure_future(self._refresh(show.id))

    def in_doubt(self, *_: Any) -> None:
        """The broker connection was lost or made again: events may be missing."""
        for show in self.shows.values():
            show.stale = True

    async def on_connect(self, connection: Any) -> None:
        self.in_doubt()

    def wrote(self, result: Any, frees: bool = False) -> None:
        """A write's answer through this process: its version is the least its next read
        of the show may show. The version is for the gateway only: it is taken out of the
        answer (paying or refunding twice answers the same body, as before). A write that
        ``frees`` seats holds off this process's refusals (``refuse_taken``) of holds of the
        seat it freed (a refund names it) or of any seat of the show (a cancel does not) until
        it shows: a hold or a payment only takes seats, so a copy that has not seen one yet
        refuses nothing it should not."""
        if not isinstance(result, dict):
            return
        version = result.pop("seats_version", None)
        sid = result.get("schedule_id")
        # A show not in memory (nor being fetched) is read next from a snapshot taken after
        # this write committed: nothing to remember for it (so the floors stay few).
        if version is not None and (sid in self.shows or sid in self._fetching) \
                and version > self.floor.get(sid, 0):
            self.floor[sid] = version
        if frees and version is not None and (sid in self.shows or sid in self._fetching):
            seat = (result["row"], result["col"]) if "row" in result else None  # a refund's
            freed = self._unseen_frees(sid, self.shows[sid].version if sid in self.shows else 0)
            self.freed[sid] = [*freed, (version, seat)]

    # -- reading ----------------------------------------------------------------------------

    def current(self, sid: int) -> Show | None:
        """The show when what this process holds may be answered as it is (read, fresh, no
        write of this process's still to come), else None: ``get`` it."""
        now = time.monotonic()
        if now - self._last_sweep > 10:
            self._sweep(now)
        show = self.shows.get(sid)
        if show is None or show.stale or sid in self.floor:
            return None
        show.last_read = now
        self.shows.move_to_end(sid)
        return show

    async def get(self, sid: int) -> Show:
        show = self.current(sid)
        if show is not None:
            return show
        now = time.monotonic()
        show = self.shows.get(sid)
        need = self.floor.get(sid, 0)
        if show is not None and not show.stale and show.version < need:
            deadline = now + WAIT_SECONDS
            while show.version < need and not show.stale and (left := deadline
                                                               - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(show.changed.wait(), left)
                except TimeoutError:
                    break
        if show is None or show.stale or show.version < need:
            show = await self._refresh(sid)
        show.last_read = now
        self.shows.move_to_end(sid)
        if show.version >= need:
            self.floor.pop(sid, None)
        return show

    async def _refresh(self, sid: int) -> Show:
        """One snapshot at a time per show; readers arriving meanwhile share it."""
        pending = self._fetching.get(sid)
        if pending is None:
            pending = self._fetching[sid] = asyncio.ensure_future(self._snapshot(sid))
        return await asyncio.shield(pending)

    async def _snapshot(self, sid: int) -> Show:
        try:
            snap = c.SeatSnapshot.model_validate(await self.rpc.call(
                c.GetSeatSnapshot.name, {"id": sid}, ANONYMOUS, SNAPSHOT_TIMEOUT))
        finally:
            del self._fetching[sid]
        early = self._early.pop(sid, {})
        show = self.shows.get(sid)
        if show is not None and snap.version < show.version:
            show.stale = False  # what we show is newer than the snapshot: keep it
            return show
        if show is None:
            show = self.shows[sid] = Show(snap)
            if len(self.shows) > MAX_SHOWS:
                self._forget_oldest()
        else:
            show.codes = bytearray(snap.codes.encode())
            show.rows, show.cols, show.price = snap.rows, snap.cols, snap.price
            show.no_single_gaps = snap.no_single_gaps
            show.sales_close_at = snap.sales_close_at
            show.stale = False
            show.advanced(snap.version, None)
        show.pending.update({v: ch for v, ch in early.items() if v > snap.version})
        self._drain(show)
        return show

    # -- holds refused at the edge -----------------------------------------------------------

    def refuse_taken(self, hold: dict[str, Any]) -> None:
        """Most holds of an on-sale rush ask for seats already taken: refuse those here, with
        ticket_svc's own answer (409 ``seat_unavailable``, the same ``errors``), when this
        process's copy of the show is current and says a seat asked for is not available. A
        hold that may win, or whose answer could be another one (an Idempotency-Key that may
        replay an earlier answer, a clerk's sale on an account, sales about to close), goes on
        to ticket_svc, which decides every seat that is won. A hold of a show not kept here
        starts keeping it, for the holds after it."""
        seats = hold.get("seats")
        if not seats or "customer_id" in hold or "idempotency_key" in hold:
            return
        sid = hold["schedule_id"]
        show = self.shows.get(sid)
        if show is None:
            if sid not in self._fetching:
                asyncio.ensure_future(self._keep(sid))
            return
        keys = sorted({(seat["row"], seat["col"]) for seat in seats})
        if any(seat is None or seat in keys  # known here once their events came
               for _, seat in self._unseen_frees(sid, show.version)):
            return
        if show.stale or show.sales_close_at is None \
                or datetime.now(UTC) >= show.sales_close_at - SALES_CLOSE_MARGIN:
            return
        rows, cols, codes = show.rows, show.cols, show.codes
        found = {}
        for row, col in keys:
            if 1 <= row <= rows and 1 <= col <= cols and (
                    code := codes[(row - 1) * cols + col - 1]) != 45:  # "-": no position
                found[row, col] = STATUS[code]
        if any(found.get(key) != "available" for key in keys):
            show.last_read = time.monotonic()
            metrics.holds_refused_at_edge.inc()
            raise errors.SeatUnavailable(c.NOTHING_HELD,
                                         details=c.seats_not_available(found, keys))

    def _unseen_frees(self, sid: int, seen: int) -> list[tuple[int, tuple[int, int] | None]]:
        """This process's writes that freed seats of the show and are newer than ``seen``
        (the older ones are forgotten)."""
        freed = [(v, seat) for v, seat in self.freed.get(sid, ()) if v > seen]
        if freed:
            self.freed[sid] = freed
        else:
            self.freed.pop(sid, None)
        return freed

    async def _keep(self, sid: int) -> None:
        try:
            await self.get(sid)
        except Exception:  # noqa: BLE001 - no such show, or ticket_svc busy: holds go on
            pass

    def streams(self) -> int:
        """Streams open now (the ``ttms_seat_streams`` gauge)."""
        return sum(show.watchers for show in self.shows.values())

    def _forget_oldest(self) -> None:
        for sid, show in list(self.shows.items()):
            if len(self.shows) <= MAX_SHOWS:
                break
            if not show.watchers:
                del self.shows[sid]

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for sid, show in list(self.shows.items()):
            if not show.watchers and now - show.last_read > IDLE_SECONDS:
                del self.shows[sid]
                self.floor.pop(sid, None)
                self.freed.pop(sid, None)


def content_coding(accept_encoding: str) -> str:
    """br where the client takes it, else gzip, else the plain JSON ("json"); ``q=0`` refuses."""
    taken = set()
    for part in accept_encoding.lower().split(","):
        name, _, params = part.strip().partition(";")
        if params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            taken.add(name.strip())
    for coding in ("br", "gzip"):
        if coding in taken:
            return coding
    return "json"


async def seat_map(request: web.Request, maps: SeatMaps) -> web.Response:
    """``GET /schedules/{id}/seats`` from memory: ETag from the version, br or gzip when asked.
    A show in memory and current is answered without a wait (``SeatMaps.current``), with its
    body and headers built once per version and coding."""
    sid = int(request.match_info["id"])
    show = maps.current(sid) or await maps.get(sid)
    etag = f'"{show.id}.{show.version}"'
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers={
            "ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"})
    coding = _CODINGS.get(accept := request.headers.get("Accept-Encoding", ""))
    if coding is None:
        if len(_CODINGS) > 256:  # what clients send is a handful of strings
            _CODINGS.clear()
        coding = _CODINGS[accept] = content_coding(accept)
    body, headers = show.answer(coding)
    return web.Response(body=body, headers=headers)


_CODINGS: dict[str, str] = {}  # Accept-Encoding as sent → the coding answered
