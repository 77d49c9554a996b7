"""The ``watchers`` scenario: W open seat-map streams on the show while the rush runs.

``W`` streams (``GET …/seats/stream``) are opened and left open; then the rush runs under wrk
as in its own scenario, and meanwhile a probe holds a seat of an uncontested row every
``PROBE_EVERY`` seconds (then cancels it). For ``PROBE_STREAMS`` of the streams, the time from
the probe hold's answer to that seat's appearance as ``held`` in the stream is recorded (the
other streams only read). Reported: the p50/p99/max of that delay, probes never seen, the
rush's rate beside the rush without watchers (if it ran in the same run), and the gateway's
memory (RSS) before and after the streams opened, per 1,000 watchers.

One Python process reads every stream: on a small host it is itself a load, so the delays
are an upper bound of what the gateway adds. To keep that load to what a watcher elsewhere
would cost this host (its connection, not its parsing), only the probed streams are read
with an HTTP client and parsed; the others are bare connections whose bytes are counted.
"""

from __future__ import annotations

import asyncio
import resource
import time
import urllib.parse
from pathlib import Path

import aiohttp
import orjson

PROBE_STREAMS = 50
PROBE_EVERY = 0.25
PROBE_ROW = 10   # a row no scenario contests


class Silent(asyncio.Protocol):
    """A stream kept open by a bare connection: what arrives is counted, not parsed."""

    def __init__(self) -> None:
        self.answered: asyncio.Future = asyncio.get_running_loop().create_future()
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.answered.done():
            self.answered.set_result(data.startswith(b"HTTP/1.1 200"))
        self.received += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_result(False)


async def open_silent(url: str, path: str) -> Silent:
    where = urllib.parse.urlsplit(url)
    watcher = Silent()
    await asyncio.get_running_loop().create_connection(
        lambda: watcher, where.hostname, where.port)
    watcher.transport.write(f"GET {path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
                            "Accept: text/event-stream\r\n\r\n".encode())
    return watcher


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def raise_open_files(pids: list[int], needed: int) -> dict[str, int]:
    """Each stream is a file descriptor in this process and in the gateway: raise the soft
    limit (``ulimit -n``) of both, up to the hard one, to ``needed``. What each can open is
    returned (reported with the run)."""
    limits = {}
    for pid in [0, *pids]:  # 0: this process
        try:
            soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            if soft != resource.RLIM_INFINITY and soft < needed:
                soft = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            limits["bench" if pid == 0 else str(pid)] = soft
        except (OSError, ValueError):  # not ours, or gone
            pass
    return limits


async def run(url: str, state: dict, watchers: int, seconds: float, gateway_pids: list[int],
              rush) -> dict:
    sid = state["schedule_id"]
    open_files = raise_open_files(gateway_pids, watchers + 1_000)
    seen: dict[tuple[int, int, int], float] = {}
    opened = 0
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        rss_before = rss_kib(gateway_pids)
        all_open = asyncio.Event()

        path = f"/api/v1/schedules/{sid}/seats/stream"
        silent: list[Silent] = []

        def counted() -> None:
            nonlocal opened
            opened += 1
            if opened == watchers:
                all_open.set()

        async def watch(i: int) -> None:
            if i >= PROBE_STREAMS:
                watcher = await open_silent(url, path)
                silent.append(watcher)
                if await watcher.answered:
                    counted()
                return
            async with session.get(f"{url}{path}",
                                   headers={"Accept": "text/event-stream"}) as response:
                counted()
                async for line in response.content:
                    if not line.startswith(b"data: {\"version\""):
                        continue
                    now = time.monotonic()
                    for seat in orjson.loads(line[6:])["seats"]:
                        if seat["row"] == PROBE_ROW and seat["status"] == "held":
                            seen.setdefault((i, seat["row"], seat["col"]), now)

        tasks = []
        for i in range(watchers):
            tasks.append(asyncio.create_task(watch(i)))
            if i % 100 == 99:
                await asyncio.sleep(0.05)
        try:
            await asyncio.wait_for(all_open.wait(), 60)
        except TimeoutError:
            pass  # reported: streams_opened
        await asyncio.sleep(1)
        rss_after = rss_kib(gateway_pids)

        answered: dict[tuple[int, int], float] = {}
        token = state["customers"][0][1]
        headers = {"Authorization": f"Bearer {token}"}

        async def probe() -> None:
            col = 0
            while True:
                col = col % 30 + 1
                async with session.post(f"{url}/api/v1/reservations", json={
                        "schedule_id": sid, "seats": [{"row": PROBE_ROW, "col": col}]},
                        headers=headers) as response:
                    body = await response.json()
                if response.status == 201:
                    answered[PROBE_ROW, col] = time.monotonic()
                    await asyncio.sleep(PROBE_EVERY)
                    async with session.delete(f"{url}/api/v1/reservations/{body['id']}",
                                              headers=headers):
                        pass
                else:
                    await asyncio.sleep(PROBE_EVERY)

        prober = asyncio.create_task(probe())
        result = await asyncio.to_thread(rush)
        prober.cancel()
        await asyncio.sleep(1.5)  # the last probes' events
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, prober, return_exceptions=True)
        for watcher in silent:
            watcher.transport.close()
    delays, missed = [], 0
    for (row, col), at in answered.items():
        for i in range(min(PROBE_STREAMS, watchers)):
            got = seen.get((i, row, col))
            if got is None:
                missed += 1
            else:
                delays.append(max(0.0, got - at))
    delays.sort()

    def pct(p: float) -> float | None:
        return round(delays[min(len(delays) - 1, int(p * len(delays)))] * 1000, 1) \
            if delays else None

    result.update({
        "scenario": "watchers", "watchers": watchers, "streams_opened": opened,
        "probes": len(answered), "probe_delay_ms": {"p50": pct(0.5), "p99": pct(0.99),
                                                    "max": pct(1.0)},
        "probe_misses": missed, "open_files_limit": open_files,
        "gateway_rss_kib": {"before": rss_before, "after": rss_after,
                            "per_1000_watchers": round((rss_after - rss_before)
                                                       / max(1, opened) * 1000)}})
    return result
