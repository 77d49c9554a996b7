"""The ``sellout`` scenarios (issue 17, part 3): a whole house sold to a crowd of buyers.

A show of its own in a 50 × 100 studio (5,000 seats) and 2,000 signed-in customers, every one
of them buying at once, in an asyncio client of their own (wrk cannot keep a buyer's state
across requests, nor follow the seat map). Each buyer, over and over until the house is sold:

- wants a group of 1–4 seats (2.5 on average: 1 ×15%, 2 ×45%, 3 ×15%, 4 ×25%);
- ``sellout`` (named seats): looks at the seat map, as the web app shows it live (one
  ``…/seats/stream`` shared by the buyers, plus what each buyer's own answers told), and asks
  for the adjacent seats nearest its own favourite place — each buyer has one, around a third
  of the way back and the centre (one row further back weighs as two seats sideways); when no
  block of the group's size is left, the group's best single seats; when refused, marks what
  the answer named as taken and picks again;
- ``sellout-best`` (best available, on a show of its own): ``{quantity, together: true}``,
  then ``together: false`` once no such block is left;
- then pays at once (85%) or walks away and lets the hold expire (15%), and comes back for its
  next group. Seats the map shows none of (all held or sold) are waited for: holds that expire
  bring them back.

The system's hold length (``TTMS_HOLD_SECONDS``, read from the holds' answers) bounds how soon
walked-away seats come back, so the run reports both when no seat was left free for the first
time (``all_taken``) and when every seat was paid (``sold_out``). A run in which nothing was
paid for ``stall_seconds`` ends there ("nothing more can sell").

Reported: seconds to sell out, paid seats per second, p50/p99 of hold and of pay (all answers,
and won holds alone), answers by request and code, CPU seconds of every process and of this
client; afterwards the invariants (``bench/invariants.py``) on the show, and every seat this
client was told is paid is sold.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import resource
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from bench import invariants
from bench.processes import cpu_seconds, watched_processes
from bench.watchers import raise_open_files
from chaos.rush import RETRYABLE, Api, Customer, Record, customers, make_show, sign_in

HOUSE = (50, 100)
BUYERS = 2000
SMOKE_HOUSE = (4, 12)
SMOKE_BUYERS = 16
PAY_SHARE = 0.85
GROUP_SIZES = ((1, 0.15), (2, 0.45), (3, 0.15), (4, 0.25))
ROW_WEIGHT = 2.0  # one row further from a buyer's favourite counts as two seats sideways
RESYNC_SECONDS = 3.0  # no seat free and the stream quiet this long: read the whole map
VARIANTS = {"sellout": "named", "sellout-best": "best"}
CODE = {"available": ord("a"), "held": ord("h"), "sold": ord("s"), "unavailable": ord("x")}
FREE = ord("a")


class House:
    """The show's seats as the buyers see them: one seat-map stream (``snapshot``, then
    ``changes``) and the buyers' own answers, one byte per place (``CODE``)."""

    def __init__(self, rows: int, cols: int) -> None:
        self.rows, self.cols = rows, cols
        self.codes = bytearray(b"x" * rows * cols)
        self.capacity = 0
        self.changed = asyncio.Event()
        self.first_empty: float | None = None  # time.monotonic() when no seat was free
        self.last_message = 0.0

    @property
    def free(self) -> int:
        return self.codes.count(FREE)

    def mark(self, seats: list[tuple[int, int]], code: int) -> None:
        for row, col in seats:
            self.codes[(row - 1) * self.cols + col - 1] = code
        self._changed()

    def on_message(self, message: bytes) -> None:
        """One Server-Sent Event of ``…/seats/stream``."""
        kind, data = None, None
        for line in message.split(b"\n"):
            if line.startswith(b"event: "):
                kind = line[7:].decode()
            elif line.startswith(b"data: "):
                data = orjson.loads(line[6:])
        if data is not None and kind in ("snapshot", "changes"):  # else a keep-alive
            self.apply(kind, data)

    def apply(self, kind: str, data: dict[str, Any]) -> None:
        """A ``snapshot`` (the whole seat map) or ``changes`` (some of its seats)."""
        self.last_message = time.monotonic()
        for seat in data["seats"]:
            self.codes[(seat["row"] - 1) * self.cols + seat["col"] - 1] = CODE[seat["status"]]
        if kind == "snapshot":
            self.capacity = len(self.codes) - self.codes.count(CODE["unavailable"])
        self._changed()

    def _changed(self) -> None:
        if self.first_empty is None and self.capacity and FREE not in self.codes:
            self.first_empty = time.monotonic()
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def wait_for_change(self, seconds: float = 1.0) -> None:
        try:
            await asyncio.wait_for(self.changed.wait(), seconds)
        except TimeoutError:
            pass

    def together(self, size: int, row: float, col: float) -> list[tuple[int, int]] | None:
        """The ``size`` adjacent free seats of one row nearest the place (``row``, ``col``)."""
        best, best_score = None, float("inf")
        want = b"a" * size
        for r in sorted(range(1, self.rows + 1), key=lambda r: abs(r - row)):
            row_cost = ROW_WEIGHT * abs(r - row)
            if row_cost >= best_score:
                break
            line = self.codes[(r - 1) * self.cols:r * self.cols]
            start = line.find(want)
            while start >= 0:
                middle = start + 1 + (size - 1) / 2
                score = row_cost + abs(middle - col)
                if score < best_score:
                    best, best_score = (r, start + 1), score
                if middle > col:  # further right only moves away from the favourite
                    break
                start = line.find(want, start + 1)
        if best is None:
            return None
        return [(best[0], best[1] + i) for i in range(size)]

    def scattered(self, size: int, row: float, col: float) -> list[tuple[int, int]]:
        """The ``size`` free seats nearest the place, wherever they are."""
        free = [(i // self.cols + 1, i % self.cols + 1) for i, code in enumerate(self.codes)
                if code == FREE]
        return heapq.nsmallest(size, free,
                               key=lambda s: ROW_WEIGHT * abs(s[0] - row) + abs(s[1] - col))


@dataclass
class Plan:
    variant: str          # named | best
    schedule_id: int
    rows: int
    cols: int
    pay_share: float = PAY_SHARE
    stall_seconds: float = 60.0  # nothing paid this long: nothing more can sell
    max_seconds: float = 600.0
    seed: int = 17


class SellOut:
    def __init__(self, api: Api, people: list[Customer], plan: Plan) -> None:
        self.api = api
        self.people = people
        self.plan = plan
        self.house = House(plan.rows, plan.cols)
        self.record = Record()
        self.paid_seats = 0
        self.paid_at_first_empty: int | None = None
        self.purchases = Counter()  # paid, walked away, pay refused
        self.hold_seconds: float | None = None
        self.last_progress = 0.0
        self.done = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
        ready = asyncio.Event()
        stream = asyncio.ensure_future(self._follow(session, url, ready))
        await asyncio.wait_for(ready.wait(), 30)
        processes = watched_processes()
        cpu_before, own_before = cpu_seconds(processes), _own_cpu()
        started = self.last_progress = time.monotonic()
        buyers = [asyncio.ensure_future(self._buyer(who, random.Random(self.plan.seed * 7919 + i)))
                  for i, who in enumerate(self.people)]
        stalled = False
        while not self.done.is_set():
            now = time.monotonic()
            stall = max(self.plan.stall_seconds, 2 * (self.hold_seconds or 0) + 30)
            if (now - self.last_progress > stall
                    or now - started > self.plan.max_seconds):
                stalled = True
                break
            if self.paid_at_first_empty is None and self.house.first_empty is not None:
                self.paid_at_first_empty = self.paid_seats
            if self.house.free == 0 and now - self.house.last_message > RESYNC_SECONDS:
                await self._resync()
            try:
                await asyncio.wait_for(self.done.wait(), 0.25)
            except TimeoutError:
                pass
        ended = time.monotonic() if stalled else self.last_progress
        for task in [*buyers, stream]:
            task.cancel()
        await asyncio.gather(*buyers, stream, return_exceptions=True)
        cpu_after, own_after = cpu_seconds(processes), _own_cpu()
        cpu = {name: round(cpu_after.get(name, 0) - cpu_before.get(name, 0), 2)
               for name in cpu_after}
        cpu["bench"] = round(own_after - own_before, 2)
        return self._summary(started, ended, stalled, cpu)

    async def _follow(self, session: aiohttp.ClientSession, url: str,
                      ready: asyncio.Event) -> None:
        """The live seat map, read again from a snapshot whenever the stream ends."""
        path = f"{url.rstrip('/')}/api/v1/schedules/{self.plan.schedule_id}/seats/stream"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
        while True:
            try:
                async with session.get(path, headers={"Accept": "text/event-stream"},
                                       timeout=timeout) as response:
                    buffer = bytearray()
                    async for chunk in response.content.iter_any():
                        buffer += chunk
                        while (end := buffer.find(b"\n\n")) >= 0:
                            self.house.on_message(bytes(buffer[:end]))
                            del buffer[:end + 2]
                            if self.house.capacity:
                                ready.set()
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.5)

    async def _resync(self) -> None:
        """The whole map read again: a refusal's answer may have marked taken a seat that came
        back just before it (the stream had said so already), and no buyer would see it."""
        status, seats = await self.api.call(self.record, "seats", "GET",
                                            f"/schedules/{self.plan.schedule_id}/seats")
        if status == 200:
            self.house.apply("snapshot", seats)

    async def _buyer(self, who: Customer, rng: random.Random) -> None:
        rows, cols = self.plan.rows, self.plan.cols
        favourite = (min(rows, max(1.0, rng.gauss(1 + (rows - 1) / 3, rows / 6))),
                     min(cols, max(1.0, rng.gauss((cols + 1) / 2, cols / 8))))
        sizes, weights = zip(*GROUP_SIZES, strict=True)
        while not self.done.is_set():
            size = rng.choices(sizes, weights)[0]
            held = await (self._hold_named(who, size, favourite) if self.plan.variant == "named"
                          else self._hold_best(who, size))
            if held is None:
                return
            self._held(held)
            if rng.random() < self.plan.pay_share:
                await self._pay(who, held)
            else:
                self.purchases["walked away"] += 1  # the hold must expire by itself

    async def _hold_named(self, who: Customer, size: int,
                          favourite: tuple[float, float]) -> dict | None:
        house = self.house
        while not self.done.is_set():
            wanted = min(size, house.free)
            if wanted == 0:
                await house.wait_for_change()
                continue
            seats = (house.together(wanted, *favourite)
                     or house.scattered(wanted, *favourite))
            status, answer = await self.api.call(self.record, "hold", "POST", "/reservations", {
                "schedule_id": self.plan.schedule_id,
                "seats": [{"row": r, "col": c} for r, c in seats]}, who.token)
            if status == 201:
                return answer
            if status == 409 and answer.get("code") == "seat_unavailable":
                house.mark([(e["loc"][2]["row"], e["loc"][2]["col"])
                            for e in answer.get("errors") or []], CODE["held"])
            else:
                await _back_off(status, answer)
        return None

    async def _hold_best(self, who: Customer, size: int) -> dict | None:
        house, together = self.house, True
        while not self.done.is_set():
            wanted = min(size, house.free)
            if wanted == 0:
                await house.wait_for_change()
                continue
            status, answer = await self.api.call(self.record, "hold", "POST", "/reservations", {
                "schedule_id": self.plan.schedule_id, "quantity": wanted,
                "together": together}, who.token)
            if status == 201:
                return answer
            if status == 409 and answer.get("code") == "seat_unavailable":
                if together:
                    together = False  # no block that size left: seats apart will do
                else:
                    await house.wait_for_change()  # what the map shows free was just taken
            else:
                await _back_off(status, answer)
        return None

    def _held(self, held: dict) -> None:
        self.last_progress = time.monotonic()
        self.house.mark([(s["row"], s["col"]) for s in held["seats"]], CODE["held"])
        if self.hold_seconds is None:
            self.hold_seconds = (datetime.fromisoformat(held["expires_at"])
                                 - datetime.fromisoformat(held["created_at"])).total_seconds()

    async def _pay(self, who: Customer, held: dict) -> None:
        for _ in range(20):  # a payment is idempotent: asked again after 503, 504, no answer
            status, paid = await self.api.call(self.record, "pay", "POST",
                                               f"/reservations/{held['id']}/pay", {}, who.token)
            if status not in RETRYABLE:
                break
            await _back_off(status, paid)
        if status != 200:
            self.purchases["pay refused"] += 1
            return
        seats = [(s["row"], s["col"]) for s in paid["seats"]]
        self.purchases["paid"] += 1
        self.paid_seats += len(seats)
        self.last_progress = time.monotonic()
        self.house.mark(seats, CODE["sold"])
        if self.house.capacity and self.paid_seats >= self.house.capacity:
            self.done.set()

    def _summary(self, started: float, ended: float, stalled: bool,
                 cpu: dict[str, float]) -> dict[str, Any]:
        outcomes = self.record.outcomes
        answers = Counter(f"{o.kind} {o.status}" + (f":{o.code}" if o.code else "")
                          for o in outcomes)

        def percentiles(kind: str, won: bool = False) -> dict[str, float | None]:
            times = sorted(o.elapsed for o in outcomes
                           if o.kind == kind and (not won or 200 <= o.status < 300))
            return {f"p{p}_ms": (round(times[min(len(times) - 1, len(times) * p // 100)] * 1000,
                                       1) if times else None) for p in (50, 99)}

        seconds = ended - started
        first_empty = self.house.first_empty
        taken = round(first_empty - started, 2) if first_empty else None
        return {
            "scenario": "sellout" if self.plan.variant == "named" else "sellout-best",
            "variant": self.plan.variant, "schedule_id": self.plan.schedule_id,
            "house": f"{self.plan.rows}x{self.plan.cols}", "capacity": self.house.capacity,
            "buyers": len(self.people), "hold_seconds": self.hold_seconds,
            "sold_out": not stalled, "seconds": round(seconds, 2),
            "seconds_to_all_taken": taken,
            "paid_seats": self.paid_seats,
            "paid_seats_per_second": round(self.paid_seats / seconds, 1) if seconds else None,
            "paid_seats_per_second_to_all_taken": (
                round(self.paid_at_first_empty / taken, 1)
                if taken and self.paid_at_first_empty is not None else None),
            "purchases": dict(self.purchases),
            "requests": len(outcomes),
            "requests_per_second": round(len(outcomes) / seconds) if seconds else 0,
            "hold": percentiles("hold"), "hold_won": percentiles("hold", won=True),
            "pay": percentiles("pay"),
            "counts": dict(answers.most_common()), "cpu_seconds": cpu,
        }


async def _back_off(status: int, answer: Any) -> None:
    """A pause before asking again after 429, 503, 504, 409 ``conflict`` or no answer."""
    await asyncio.sleep(0.5 if status in RETRYABLE else 0.2)


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def set_up(url: str, admin_password: str, buyers: int, rows: int, cols: int,
                 variants: list[str]) -> dict[str, Any]:
    """``buyers`` signed-in customers and a show per variant in a ``rows`` × ``cols`` studio
    of its own (not measured)."""
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        api = Api(session, url)
        admin = await sign_in(api, "admin", admin_password)
        shows = {variant: (await make_show(api, admin, rows, cols, label="sellout"))["id"]
                 for variant in variants}
        people = await customers(api, buyers)
    return {"sellout_shows": shows, "sellout_buyers": people, "sellout_house": (rows, cols)}


async def run(url: str, state: dict[str, Any], scenario: str,
              max_seconds: float = 600) -> dict[str, Any]:
    """One variant's sell-out against ``state`` from ``set_up``."""
    people = state["sellout_buyers"]
    rows, cols = state["sellout_house"]
    raise_open_files(watched_processes().get("gateway", []), len(people) + 1_000)
    plan = Plan(VARIANTS[scenario], state["sellout_shows"][scenario], rows, cols,
                max_seconds=max_seconds)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        return await SellOut(Api(session, url), people, plan).run(session, url)


async def check(url: str, result: dict[str, Any]) -> list[str]:
    """The run's invariants on its show, every seat paid to this client sold, and no server
    error but 503 and 504. A house not sold out is a result (its row says so), not a failure."""
    failures = await invariants.check(url, {"schedule_id": result["schedule_id"]})
    sold = await invariants.sold_seats(result["schedule_id"])
    if sold < result["paid_seats"]:
        failures.append(f"{result['scenario']}: {result['paid_seats']} seats answered paid, "
                        f"{sold} sold")
    if errors := {k: v for k, v in result["counts"].items()
                  if k.split()[1][0] == "5" and not k.split()[1].startswith(("503", "504"))}:
        failures.append(f"{result['scenario']}: server errors {errors}")
    return failures


HEADER = (
    "| when (UTC) | variant | house × buyers | hold s | host req/s | seconds to sell out "
    "(all taken) | paid seats/s (to all taken) | hold p50/p99 ms (won) | pay p50/p99 ms | "
    "purchases | answers | CPU s | invariants | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def row(result: dict[str, Any], host: dict | None, failures: list[str], stamp: str,
        note: str) -> str:
    """One variant's run as a row under ``HEADER``."""
    def pair(d: dict) -> str:
        return f"{d['p50_ms']}/{d['p99_ms']}"

    cpu = ", ".join(f"{k} {v}" for k, v in result["cpu_seconds"].items() if v)
    verdict = "FAILED: " + "; ".join(failures) if failures else "ok"
    sold = (f"{result['seconds']}" if result["sold_out"]
            else f"not sold out: {result['paid_seats']} paid in {result['seconds']}")
    cells = [stamp, result["variant"],
             f"{result['house']} ({result['capacity']}) × {result['buyers']}",
             str(result["hold_seconds"]), str(host["requests_per_second"]) if host else "–",
             f"{sold} ({result['seconds_to_all_taken']})",
             f"{result['paid_seats_per_second']} "
             f"({result['paid_seats_per_second_to_all_taken']})",
             f"{pair(result['hold'])} ({pair(result['hold_won'])})", pair(result["pay"]),
             ", ".join(f"{k}: {v}" for k, v in result["purchases"].items()),
             ", ".join(f"{k}: {v}" for k, v in result["counts"].items()), cpu,
             verdict, note]
    cells = [c.replace("None", "–") for c in cells]
    return "| " + " | ".join(" ".join(c.split()).replace("|", "/") for c in cells) + " |\n"
