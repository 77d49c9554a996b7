"""The on-sale rush: customers hold contested seats, pay when they win, refund some, abandon
some holds (the sweep and the delay queue must release them), all through the gateway on
127.0.0.1. Every request's outcome is recorded; every pay that answered 200 is kept (its
reservation, tickets and seats), so the checks can prove afterwards that none was lost.

A request that gets no answer within ``HANG_SECONDS`` counts as a hang; a refused or reset
connection (the gateway itself killed) as ``conn_error``.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson

HANG_SECONDS = 10.0
RETRYABLE = {503, 504, -1, -2}  # -1: connection refused/reset, -2: no answer (a hang)


@dataclass(slots=True)
class Outcome:
    kind: str          # hold | pay | refund | cancel | seats
    status: int        # HTTP status, -1 connection error, -2 hang
    code: str | None   # problem+json code, or the exception's class
    started: float     # time.monotonic()
    elapsed: float
    detail: str | None = None  # the problem's detail, kept for unexpected answers only


@dataclass(slots=True)
class PaidSale:
    reservation_id: int
    schedule_id: int
    user_id: int
    ticket_ids: list[int]
    seats: list[tuple[int, int]]


@dataclass
class Customer:
    username: str
    token: str
    user_id: int


@dataclass
class Record:
    """What one phase sent and what came back."""
    outcomes: list[Outcome] = field(default_factory=list)
    paid: dict[int, PaidSale] = field(default_factory=dict)
    refund_sent: set[int] = field(default_factory=set)   # ticket ids the driver asked to refund
    refunded: set[int] = field(default_factory=set)      # ... and got 200 for
    holds: dict[int, int] = field(default_factory=dict)  # reservation id → owner user id

    def writes(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind != "seats"]

    def summary(self) -> dict[str, Any]:
        writes = self.writes()
        refused = Counter(f"{o.status} {o.code}" if o.status > 0 else str(o.code)
                          for o in writes if not 200 <= o.status < 300)
        return {"sent": len(writes), "accepted": sum(200 <= o.status < 300 for o in writes),
                "refused": dict(refused.most_common()),
                "hangs": sum(o.status == -2 for o in self.outcomes),
                "by_kind": dict(Counter(f"{o.kind} {o.status}" for o in writes).most_common()),
                "paid": len(self.paid), "refunded": len(self.refunded)}

    def slowest(self, since: float = 0.0, until: float = float("inf"),
                in_flight: bool = False) -> float:
        """The longest answer among requests started in [since, until] (or, ``in_flight``,
        that were waiting for their answer at some moment of it)."""
        return max((o.elapsed for o in self.outcomes
                    if (since <= o.started <= until if not in_flight
                        else o.started <= until and o.started + o.elapsed >= since)),
                   default=0.0)

    def unexpected(self, allowed: frozenset[str]) -> list[str]:
        """Refusals that are not among ``allowed`` (statuses as text, or "conn_error")."""
        odd = Counter()
        example: dict[str, str] = {}
        for o in self.outcomes:
            if 200 <= o.status < 300:
                continue
            kind = "conn_error" if o.status == -1 else "hang" if o.status == -2 else str(o.status)
            if kind not in allowed:
                label = f"{o.kind} {o.status} {o.code}"
                odd[label] += 1
                example.setdefault(label, o.detail or "")
        return [f"unexpected answer {label} x{n}: {example[label][:200]}"
                for label, n in odd.most_common()]

    def accepted_between(self, began: float, ended: float) -> int:
        return sum(began <= o.started + o.elapsed < ended for o in self.outcomes
                   if o.kind in ("hold", "pay") and 200 <= o.status < 300)

    def back_to_rate_after(self, moment: float, baseline: tuple[float, float],
                           share: float = 0.8, window: float = 2.0) -> float | None:
        """Seconds from ``moment`` until the accepted holds and pays in a ``window`` are
        back to ``share`` of their rate in ``baseline`` (a span before the fault)."""
        accepted = sorted(o.started + o.elapsed for o in self.outcomes
                          if o.kind in ("hold", "pay") and 200 <= o.status < 300)
        span = baseline[1] - baseline[0]
        if span <= 0:
            return None
        rate = sum(baseline[0] <= t < baseline[1] for t in accepted) / span
        start = moment
        while start + window <= (accepted[-1] if accepted else moment):
            if sum(start <= t < start + window for t in accepted) / window >= share * rate:
                return start - moment
            start += 0.25
        return None

    def first_accepted_after(self, moment: float) -> float | None:
        times = [o.started + o.elapsed for o in self.outcomes
                 if o.started >= moment and o.kind in ("hold", "pay") and 200 <= o.status < 300]
        return min(times, default=None)


class Api:
    """A tiny client of the gateway that records every answer into a Record."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base.rstrip("/")

    async def call(self, record: Record | None, kind: str, method: str, path: str,
                   body: Any = None, token: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = orjson.dumps(body)
            all_headers["Content-Type"] = "application/json"
        url = self.base + (path if path.startswith("/readyz") else "/api/v1" + path)
        started = time.monotonic()
        status, answer, code = -1, None, None
        try:
            async with self.session.request(method, url, data=data, headers=all_headers,
                                            timeout=aiohttp.ClientTimeout(total=HANG_SECONDS)
                                            ) as response:
                raw = await response.read()
                status = response.status
                try:
                    answer = orjson.loads(raw) if raw else None
                except orjson.JSONDecodeError:
                    answer = raw.decode(errors="replace")
                if isinstance(answer, dict) and status >= 400:
                    code = answer.get("code")
        except TimeoutError:
            status, code = -2, "hang"
        except (aiohttp.ClientError, OSError) as exc:
            status, code = -1, f"conn_error:{type(exc).__name__}"
        if record is not None:
            detail = None
            if status >= 500 and status not in (503, 504):
                detail = str(answer.get("detail") if isinstance(answer, dict) else answer)
            record.outcomes.append(Outcome(kind, status, code, started,
                                           time.monotonic() - started, detail))
        return status, answer


# -- set-up through the API -----------------------------------------------------------------

async def patiently(api: Api, kind: str, method: str, path: str, body: Any = None,
                    token: str | None = None) -> tuple[int, Any]:
    """A set-up or check request, again after a 503: sign-ups and sign-ins arrive in a burst,
    and user_svc's hashing gate answers those it cannot start in time with 503 at once; after
    a database fail-over each process answers a 503 for its pool of cut connections."""
    for _ in range(40):
        status, answer = await api.call(None, kind, method, path, body, token=token)
        if status != 503:
            break
        await asyncio.sleep(0.25 + random.random() * 0.5)
    return status, answer


async def sign_in(api: Api, username: str, password: str) -> Customer:
    status, body = await patiently(api, "login", "POST", "/auth/login",
                                   {"username": username, "password": password})
    if status != 200:
        raise RuntimeError(f"login of {username}: {status} {body}")
    token = body["access_token"]
    status, me = await api.call(None, "me", "GET", "/users/me", token=token)
    if status != 200:
        raise RuntimeError(f"/users/me of {username}: {status} {me}")
    return Customer(username, token, me["id"])


async def staff(api: Api, admin_password: str, role: str = "manager") -> Customer:
    admin = await sign_in(api, "admin", admin_password)
    username = f"chaos_{role}_{uuid.uuid4().hex[:8]}"
    status, body = await patiently(api, "setup", "POST", "/users", {
        "username": username, "password": "password123", "role": role}, token=admin.token)
    if status != 201:
        raise RuntimeError(f"create {role}: {status} {body}")
    return await sign_in(api, username, "password123")


async def customers(api: Api, count: int) -> list[Customer]:
    tag = uuid.uuid4().hex[:6]

    async def one(i: int) -> Customer:
        username = f"chaos_{tag}_{i}"
        status, body = await patiently(api, "setup", "POST", "/auth/register",
                                       {"username": username, "password": "password123"})
        if status != 201:
            raise RuntimeError(f"register {username}: {status} {body}")
        return await sign_in(api, username, "password123")

    found: list[Customer] = []
    for start in range(0, count, 20):
        found += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 20))))
    return found


async def make_show(api: Api, manager: Customer, rows: int, cols: int, price: int = 4500,
                    label: str = "") -> dict:
    tag = f"{label} {uuid.uuid4().hex[:8]}".strip()
    status, studio = await patiently(api, "setup", "POST", "/studios", {
        "name": f"Chaos studio {tag}", "rows": rows, "cols": cols}, token=manager.token)
    if status != 201:
        raise RuntimeError(f"studio: {status} {studio}")
    starts_at = (datetime.now(UTC) + timedelta(days=3)).replace(second=0, microsecond=0)
    day = starts_at.date()
    status, play = await patiently(api, "setup", "POST", "/plays", {
        "name": f"Chaos play {tag}", "kind": "concert", "rating": "all",
        "duration_minutes": 90, "starts_on": str(day - timedelta(days=1)),
        "ends_on": str(day + timedelta(days=5)), "price": price}, token=manager.token)
    if status != 201:
        raise RuntimeError(f"play: {status} {play}")
    status, show = await patiently(api, "setup", "POST", "/schedules", {
        "play_id": play["id"], "studio_id": studio["id"],
        "starts_at": starts_at.isoformat().replace("+00:00", "Z")}, token=manager.token)
    if status != 201:
        raise RuntimeError(f"schedule: {status} {show}")
    return show


# -- the rush -------------------------------------------------------------------------------

class SeatMap:
    """The available seats as the customers last saw them (refreshed at most twice a second,
    shared by every worker): everyone goes for the best ones, so holds collide."""

    def __init__(self, api: Api, record: Record, schedule_id: int, token: str) -> None:
        self.api = api
        self.record = record
        self.schedule_id = schedule_id
        self.token = token
        self.available: list[tuple[int, int]] = []
        self.fetched = 0.0
        self.lock = asyncio.Lock()

    async def refresh(self, force: bool = False) -> None:
        async with self.lock:
            if not force and time.monotonic() - self.fetched < 0.5:
                return
            status, body = await self.api.call(self.record, "seats", "GET",
                                               f"/schedules/{self.schedule_id}/seats",
                                               token=self.token)
            self.fetched = time.monotonic()
            if status == 200:
                self.available = sorted((s["row"], s["col"]) for s in body["seats"]
                                        if s["status"] == "available")

    def pick(self, rng: random.Random) -> list[tuple[int, int]]:
        if not self.available:
            return []
        # front rows first: the index is skewed towards the start of the sorted list
        start = int(len(self.available) * rng.random() ** 2)
        want = rng.choice((1, 1, 2, 2, 3, 4))
        first = self.available[start]
        picked = [s for s in self.available[start:start + want] if s[0] == first[0]]
        return picked


@dataclass
class RushPlan:
    seconds: float
    workers: int = 16
    max_requests: int = 20_000
    pay_share: float = 0.8       # of won holds
    cancel_share: float = 0.05   # of won holds (the rest is abandoned: it must expire)
    refund_share: float = 0.25   # of paid reservations, one ticket each
    seed: int | None = None


class Rush:
    def __init__(self, api: Api, show: dict, people: list[Customer], plan: RushPlan) -> None:
        self.api = api
        self.show = show
        self.people = people
        self.plan = plan
        self.record = Record()
        self.rng = random.Random(plan.seed)
        self.seat_map = SeatMap(api, self.record, show["id"], people[0].token)
        self.stop_at = 0.0
        # While this is clear the rush goes on past stop_at (a fault is still in force).
        self.released = asyncio.Event()
        self.released.set()

    def _done(self) -> bool:
        return ((time.monotonic() >= self.stop_at and self.released.is_set())
                or len(self.record.outcomes) >= self.plan.max_requests)

    async def run(self) -> Record:
        self.stop_at = time.monotonic() + self.plan.seconds
        await self.seat_map.refresh(force=True)
        await asyncio.gather(*(self._worker() for _ in range(self.plan.workers)))
        return self.record

    async def _retrying(self, kind: str, method: str, path: str, body: Any, who: Customer,
                        key: str | None = None, tries: int = 4) -> tuple[int, Any]:
        """A patient client: retries 503/504/no answer (with the same Idempotency-Key), and
        409 conflict (the first attempt is still being handled)."""
        status, answer = -1, None
        for attempt in range(tries):
            headers = {"Idempotency-Key": key} if key else None
            status, answer = await self.api.call(self.record, kind, method, path, body,
                                                 who.token, headers)
            retry = status in RETRYABLE or (status == 409 and isinstance(answer, dict)
                                            and answer.get("code") == "conflict")
            if not retry or self._done():
                break
            await asyncio.sleep(0.3 * (attempt + 1))
        return status, answer

    async def _worker(self) -> None:
        rng, record = self.rng, self.record
        while not self._done():
            who = rng.choice(self.people)
            seats = self.seat_map.pick(rng)
            if not seats:
                await self.seat_map.refresh()
                await asyncio.sleep(0.05)
                continue
            status, held = await self.api.call(record, "hold", "POST", "/reservations", {
                "schedule_id": self.show["id"],
                "seats": [{"row": r, "col": c} for r, c in seats]}, who.token)
            if status in RETRYABLE:
                await asyncio.sleep(0.2)
                continue
            if status != 201:
                if status == 409:
                    await self.seat_map.refresh()
                continue
            record.holds[held["id"]] = who.user_id
            draw = rng.random()
            if draw < self.plan.pay_share:
                await self._pay(who, held)
            elif draw < self.plan.pay_share + self.plan.cancel_share:
                await self._retrying("cancel", "DELETE", f"/reservations/{held['id']}", None,
                                     who)
            # else: abandoned; it must expire by itself
            await asyncio.sleep(rng.random() * 0.02)

    async def _pay(self, who: Customer, held: dict) -> None:
        status, paid = await self._retrying("pay", "POST", f"/reservations/{held['id']}/pay",
                                            {}, who, key=uuid.uuid4().hex)
        if status != 200:
            return
        tickets = paid.get("tickets") or []
        self.record.paid[paid["id"]] = PaidSale(
            paid["id"], paid["schedule_id"], paid["user_id"], [t["id"] for t in tickets],
            [(t["row"], t["col"]) for t in tickets])
        if tickets and self.rng.random() < self.plan.refund_share:
            ticket = self.rng.choice(tickets)
            self.record.refund_sent.add(ticket["id"])
            status, _ = await self._retrying("refund", "POST", f"/tickets/{ticket['id']}/refund",
                                             None, who)
            if status == 200:
                self.record.refunded.add(ticket["id"])
