"""``make bench`` / ``python -m bench``: the on-sale rush against a running TTMS.

Set-up (not measured): a studio, a play, a show, N customers already signed in. Then each
scenario runs under wrk (a compiled generator, with a Lua script per scenario):

- rush: C concurrent clients; each loop holds a contested seat, and a winner pays and then
  refunds (the original system's buy/refund mix);
- browse: the seat map of the show, asked for as a browser does (``Accept-Encoding: gzip,
  deflate, br``: the answer is br, built once per version);
- ceiling: ``GET /api/v1/ping``, gateway → broker → a service with no database;
- refusals (not in the default set): the rush's script on a seat sold during set-up, so every
  hold is refused: what a refusal alone costs;
- rush15 (issue 17): the rush exactly, on 15 contested seats of their own (row 6);
- cancel (issue 17): the rush on seats of its own (row 7) where each winner cancels its hold
  (``DELETE /reservations/{id}``) instead of paying: the original system's buy/return cycle;
- keyed: the rush with an ``Idempotency-Key`` on every hold and payment, as a careful client
  sends them;
- winners (issue 17, part 2): winners only, on a show of its own: every hold is of a free seat
  (each wrk thread holds only its own seats, and a seat again only after its refund was
  answered), then its payment, then the ticket's refund; cycles/s (refunds answered 200) and
  CPU ms per cycle of every process (``bench/winners.lua``, ``--winners-connections``);
- signin: C clients signing in, round robin over the N customers (a sign-in storm: argon2
  hashing is the bound; what cannot be hashed before the deadline must be refused with a fast
  503, never a 504), then at once **after-signin**, the rush again on seats of its own: it
  should run as fast as the rush before the storm (no hashing left over for gone callers);
- best (issue 14): the rush with best-available holds (``quantity: 2, together: true``) on a
  show of its own, beside the named-seat rush;
- watchers (issue 14): ``--watchers`` open seat-map streams on the show while the rush runs
  (on seats of its own); the delay from a hold's answer to its appearance in the streams, the
  rush's rate, the gateway's memory per 1,000 watchers (``bench/watchers.py``);
- sellout (issue 17, part 3): a 5,000-seat house sold out to 2,000 signed-in buyers choosing
  named seats, then **sellout-best**, the same with best-available holds, each on a show of its
  own; 85% of the holds are paid, 15% left to expire (``bench/sellout.py``, an asyncio client:
  a buyer keeps state across requests and follows the live seat map);
- host: a bare aiohttp JSON hello in a process of its own (``bench/hello.py``), no TTMS at
  all: how fast this host is during the run, so that runs on different days (or hours: the
  host's speed drifts) can be compared.

Reported per scenario: requests/s, p50/p95/p99/max latency, answers by status and code, and
CPU seconds of every TTMS process, RabbitMQ, MariaDB and wrk itself; then invariant checks
(bench/invariants.py). Results go to ``bench/results/<timestamp>.json`` and a row of
``bench/RESULTS.md``. A run that breaks an invariant is reported as failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from bench import invariants, sellout, watchers
from bench.processes import cpu_seconds, watched_processes

HERE = Path(__file__).parent
ROOT = HERE.parent
# The winners scenario's house: more seats than a thread can have in a cycle at once (one per
# connection), so each thread always holds a seat whose refund it has seen.
WINNERS_HOUSE = (20, 30)


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/") + "/api/v1"

    async def call(self, method: str, path: str, body=None, token: str | None = None,
                   expect: tuple[int, ...] = (200, 201, 204)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        for _ in range(30):
            async with self.session.request(method, self.url + path, json=body,
                                            headers=headers) as response:
                data = await response.json(content_type=None)
                # A busy host: user_svc's hashing gate refuses a burst of sign-ups with
                # 503 and Retry-After; set-up waits and tries again, as a client should.
                if response.status == 503 and "Retry-After" in response.headers:
                    await asyncio.sleep(float(response.headers["Retry-After"]))
                    continue
                if response.status not in expect:
                    raise RuntimeError(f"{method} {path} → {response.status}: {data}")
                return data
        raise RuntimeError(f"{method} {path} → still 503 after 30 tries: {data}")


async def set_up(url: str, users: int, seats: int,
                 winners_house: tuple[int, int] | None = None) -> dict:
    """Studio, play, show and signed-in customers; returns what the scenarios need.
    ``winners_house`` (rows, cols) of the winners scenario's show (``WINNERS_HOUSE``)."""
    winners_house = winners_house or WINNERS_HOUSE
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
    async with aiohttp.ClientSession() as session:
        api = Api(session, url)
        admin = (await api.call("POST", "/auth/login", {
            "username": os.environ.get("TTMS_ADMIN_USERNAME", "admin"),
            "password": os.environ.get("TTMS_ADMIN_PASSWORD", "admin-dev-password")}))
        token = admin["access_token"]
        studio = await api.call("POST", "/studios", {"name": f"bench-{stamp}", "rows": 20,
                                                     "cols": 30}, token)
        today = datetime.now(UTC).date()
        play = await api.call("POST", "/plays", {
            "name": f"Bench {stamp}", "kind": "drama", "rating": "all",
            "duration_minutes": 120, "starts_on": str(today),
            "ends_on": str(today + timedelta(days=30)), "price": 4500}, token)
        starts_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        show = await api.call("POST", "/schedules", {
            "play_id": play["id"], "studio_id": studio["id"],
            "starts_at": starts_at.isoformat()}, token)

        # Password hashing is slow on purpose: sign customers up a few at a time.
        semaphore = asyncio.Semaphore(4)

        async def customer(n: int) -> tuple[int, str]:
            name, password = f"b{stamp[-12:]}_{n}", "bench-password"
            async with semaphore:
                user = await api.call("POST", "/auth/register",
                                      {"username": name, "password": password})
                login = await api.call("POST", "/auth/login",
                                       {"username": name, "password": password})
            return user["id"], login["access_token"]

        customers = await asyncio.gather(*(customer(n) for n in range(users)))
        usernames = [f"b{stamp[-12:]}_{n}" for n in range(users)]
        # Row 2 is not contested: its first seat is sold now, for the refusals scenario.
        buyer = customers[0][1]
        held = await api.call("POST", "/reservations", {
            "schedule_id": show["id"], "seats": [{"row": 2, "col": 1}]}, buyer)
        await api.call("POST", f"/reservations/{held['id']}/pay", {}, buyer)
        best_studio = await api.call("POST", "/studios", {"name": f"bench-best-{stamp}",
                                                          "rows": 20, "cols": 30}, token)
        best_show = await api.call("POST", "/schedules", {
            "play_id": play["id"], "studio_id": best_studio["id"],
            "starts_at": starts_at.isoformat()}, token)
        # Winners only: a house of its own, every seat free when the run starts.
        winners_studio = await api.call("POST", "/studios", {
            "name": f"bench-winners-{stamp}", "rows": winners_house[0],
            "cols": winners_house[1]}, token)
        winners_show = await api.call("POST", "/schedules", {
            "play_id": play["id"], "studio_id": winners_studio["id"],
            "starts_at": starts_at.isoformat()}, token)
    # Each contested scenario has its seats: a scenario ends with some of them still held or
    # sold (cut mid-cycle), which would refuse every hold of the next one.
    return {"admin_token": token, "studio_id": studio["id"], "play_id": play["id"],
            "schedule_id": show["id"], "customers": customers,
            "seats": [(1, c) for c in range(1, seats + 1)],
            "keyed_seats": [(3, c) for c in range(1, seats + 1)], "sold_seat": (2, 1),
            "after_signin_seats": [(4, c) for c in range(1, seats + 1)],
            "watchers_seats": [(5, c) for c in range(1, seats + 1)],
            "rush15_seats": [(6, c) for c in range(1, 16)],
            "cancel_seats": [(7, c) for c in range(1, seats + 1)],
            "best_schedule_id": best_show["id"],
            "winners_schedule_id": winners_show["id"],
            "winners_seats": [(r, c) for r in range(1, winners_house[0] + 1)
                              for c in range(1, winners_house[1] + 1)],
            "usernames": usernames, "password": "bench-password"}


def lua_globals(state: dict) -> str:
    tokens = ",".join(f'"{t}"' for _, t in state["customers"])
    token_of = ",".join(f'[{u}]="{t}"' for u, t in state["customers"])
    seats = ",".join(f"{{{r},{c}}}" for r, c in state["seats"])
    usernames = ",".join(f'"{u}"' for u in state.get("usernames", []))
    return (f"TOKENS = {{{tokens}}}\nTOKEN_OF = {{{token_of}}}\n"
            f"SCHEDULE = {state['schedule_id']}\nSEATS = {{{seats}}}\n"
            f"USERNAMES = {{{usernames}}}\nPASSWORD = \"{state.get('password', '')}\"\n")


SCENARIOS = {
    "rush": ("rush.lua", "/api/v1/reservations"),
    "rush15": ("rush.lua", "/api/v1/reservations"),
    "cancel": ("rush.lua", "/api/v1/reservations"),
    "winners": ("winners.lua", "/api/v1/reservations"),
    "refusals": ("rush.lua", "/api/v1/reservations"),
    "keyed": ("rush.lua", "/api/v1/reservations"),
    "signin": ("signin.lua", "/api/v1/auth/login"),
    "after-signin": ("rush.lua", "/api/v1/reservations"),
    "browse": (None, "/api/v1/schedules/{schedule_id}/seats"),
    "ceiling": (None, "/api/v1/ping"),
    "host": (None, "/"),
    "best": ("rush.lua", "/api/v1/reservations"),
    "watchers": ("rush.lua", "/api/v1/reservations"),
    "sellout": (None, "/api/v1/reservations"),       # bench/sellout.py, not wrk
    "sellout-best": (None, "/api/v1/reservations"),
}


@contextlib.contextmanager
def hello_server():
    """``bench/hello.py`` on a free port: its URL and its process."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "bench.hello", str(port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("bench/hello.py did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_wrk(url: str, scenario: str, state: dict, seconds: float, connections: int,
            threads: int) -> dict:
    script_name, path = SCENARIOS[scenario]
    if scenario == "refusals":
        state = {**state, "seats": [state["sold_seat"]]}
    elif scenario == "keyed":
        state = {**state, "seats": state["keyed_seats"]}
    elif scenario == "after-signin":
        state = {**state, "seats": state["after_signin_seats"]}
    elif scenario == "watchers":
        state = {**state, "seats": state["watchers_seats"]}
    elif scenario == "rush15":
        state = {**state, "seats": state["rush15_seats"]}
    elif scenario == "cancel":
        state = {**state, "seats": state["cancel_seats"]}
    elif scenario == "winners":
        state = {**state, "seats": state["winners_seats"],
                 "schedule_id": state["winners_schedule_id"]}
    body = lua_globals(state)
    if scenario == "cancel":
        body += "CANCEL = true\n"
    if scenario == "winners":  # each thread holds only its own seats (bench/winners.lua)
        if len(state["seats"]) < 2 * connections:
            raise ValueError(f"winners: {len(state['seats'])} seats for {connections} "
                             "connections; a thread could hold a seat not refunded yet")
        body += f"THREADS = {threads}\n"
    if scenario == "keyed":  # keys unique to this run: a key of an earlier run answers again
        body += f'KEYED = "{time.time_ns()}"\n'
    if scenario == "browse":  # what every browser sends: the map comes compressed (br)
        body += 'wrk.headers["Accept-Encoding"] = "gzip, deflate, br"\n'
    if scenario == "best":  # a show of its own, every seat free for the picking
        body += f'BEST = {state["best_schedule_id"]}\n'
    if script_name:
        body += (HERE / script_name).read_text()
    body += (HERE / "common.lua").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(body)
    with contextlib.ExitStack() as stack:
        processes = watched_processes()
        if scenario == "host":
            url, server = stack.enter_context(hello_server())
            processes = {"hello": [server.pid]}
        target = url.rstrip("/") + path.format(**state)
        return _measure(scenario, target, script.name, processes, seconds, connections,
                        threads)


def _measure(scenario: str, target: str, script: str, processes: dict[str, list[int]],
             seconds: float, connections: int, threads: int) -> dict:
    before = cpu_seconds(processes)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
         "--timeout", "10s", "-s", script, target],
        capture_output=True, text=True, timeout=seconds + 60)
    elapsed = time.monotonic() - started
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = cpu_seconds(processes)
    os.unlink(script)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{done.stdout}\n{done.stderr}")
    result = json.loads(line[len("BENCH "):])
    result["scenario"] = scenario
    result["connections"] = connections
    result["requests_per_second"] = round(result["requests"] / (result["duration_us"] / 1e6))
    if scenario == "signin":
        result["signins_per_second"] = round(
            result["counts"].get("200", 0) / (result["duration_us"] / 1e6), 1)
    cpu = {name: round(after.get(name, 0) - before.get(name, 0), 2) for name in after}
    cpu["wrk"] = round((children_after.ru_utime + children_after.ru_stime)
                       - (children_before.ru_utime + children_before.ru_stime), 2)
    result["cpu_seconds"] = cpu
    if scenario == "winners":
        add_cycle_costs(result, after, before)
    result["wall_seconds"] = round(elapsed, 2)
    return result


def add_cycle_costs(result: dict, after: dict[str, float], before: dict[str, float]) -> None:
    """The winners scenario's figures: cycles (refunds answered 200) per second, and CPU ms
    per cycle of every process (to 0.01 ms, from the unrounded CPU seconds), their sum (wrk,
    the load generator, apart and not in it)."""
    cycles = result["counts"].get("refund 200", 0)
    result["cycles"] = cycles
    result["cycles_per_second"] = round(cycles / (result["duration_us"] / 1e6), 1)
    if not cycles:
        result["cpu_ms_per_cycle"] = {}
        return
    per = {name: round((after.get(name, 0) - before.get(name, 0)) * 1000 / cycles, 2)
           for name in after}
    per["total"] = round(sum(after.get(n, 0) - before.get(n, 0) for n in after) * 1000 / cycles,
                         2)
    per["wrk"] = round(result["cpu_seconds"]["wrk"] * 1000 / cycles, 2)
    result["cpu_ms_per_cycle"] = per


def report_row(results: list[dict], failures: list[str], stamp: str, args) -> str:
    by = {r["scenario"]: r for r in results}

    def rps(name: str) -> str:
        return str(by[name]["requests_per_second"]) if name in by else "–"

    def lat(name: str) -> str:
        if name not in by:
            return "–"
        r = by[name]
        return f"{r['p50_us'] / 1000:.1f}/{r['p99_us'] / 1000:.1f}/{r['max_us'] / 1000:.0f}"

    ratio = "–"
    if "rush" in by and "ceiling" in by and by["ceiling"]["requests_per_second"]:
        ratio = f"{by['rush']['requests_per_second'] / by['ceiling']['requests_per_second']:.0%}"
    errors = "–"
    if "rush" in by:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(by["rush"]["counts"].items())
                           if not k.startswith("2"))
    verdict = "FAILED: " + "; ".join(failures) if failures else "ok"
    verdict = " ".join(verdict.split()).replace("|", "/")  # one table cell
    return (f"| {stamp} | {args.seconds}s × c{args.connections} | {rps('host')} | "
            f"{rps('rush')} | {lat('rush')} | {errors or 'none'} | {rps('browse')} | "
            f"{rps('ceiling')} | {ratio} | {verdict} | {args.note} |\n")


def signin_row(results: list[dict], failures: list[str], stamp: str, args) -> str:
    """The sign-in storm and the rush before and right after it, in one row."""
    by = {r["scenario"]: r for r in results}

    def cell(name: str, what) -> str:
        return what(by[name]) if name in by else "–"

    def rps(r: dict) -> str:
        return str(r["requests_per_second"])

    def p99(r: dict) -> str:
        return f"{r['p99_us'] / 1000:.0f}"

    def lat(r: dict) -> str:
        return f"{r['p50_us'] / 1000:.0f}/{r['p99_us'] / 1000:.0f}/{r['max_us'] / 1000:.0f}"

    answers = ", ".join(f"{k}: {v}" for k, v in sorted(by.get("signin", {}).get(
        "counts", {}).items()))
    verdict = "FAILED: " + "; ".join(failures) if failures else "ok"
    verdict = " ".join(verdict.split()).replace("|", "/")
    cells = [stamp, f"{args.seconds}s × c{args.connections}", cell("rush", rps),
             cell("rush", p99), cell("signin", lambda r: str(r["signins_per_second"])),
             cell("signin", rps), cell("signin", lat), answers or "–",
             cell("after-signin", rps), cell("after-signin", p99),
             cell("after-signin", lambda r: str(r["cpu_seconds"].get("user_svc", "–"))),
             verdict, args.note]
    return "| " + " | ".join(cells) + " |\n"


SIGNIN_HEADER = (
    "| when (UTC) | run | rush req/s | rush p99 ms | sign-ins/s (200) | signin req/s | "
    "signin p50/p99/max ms | signin answers | rush after signin req/s | its p99 ms | "
    "user_svc CPU s during it | invariants | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


LIVE_HEADER = (
    "| when (UTC) | run | host req/s | browse req/s | browse p99 ms | rush req/s | "
    "best req/s | best p99 ms | best answers | watchers open | hold → stream p50/p99/max ms "
    "(misses) | rush with watchers req/s | gateway KiB per 1,000 watchers | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def live_row(results: list[dict], stamp: str, args) -> str:
    """Issue 14's scenarios (browse, best, watchers) beside host and rush, in one row."""
    by = {r["scenario"]: r for r in results}

    def get(name: str, what) -> str:
        return str(what(by[name])) if name in by else "–"

    def answers(r: dict) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(r["counts"].items()))

    def delay(r: dict) -> str:
        d = r["probe_delay_ms"]
        return f"{d['p50']}/{d['p99']}/{d['max']} ({r['probe_misses']})"

    return (f"| {stamp} | {args.seconds}s × c{args.connections} | "
            f"{get('host', lambda r: r['requests_per_second'])} | "
            f"{get('browse', lambda r: r['requests_per_second'])} | "
            f"{get('browse', lambda r: r['p99_us'] / 1000)} | "
            f"{get('rush', lambda r: r['requests_per_second'])} | "
            f"{get('best', lambda r: r['requests_per_second'])} | "
            f"{get('best', lambda r: r['p99_us'] / 1000)} | {get('best', answers)} | "
            f"{get('watchers', lambda r: r['streams_opened'])} | {get('watchers', delay)} | "
            f"{get('watchers', lambda r: r['requests_per_second'])} | "
            f"{get('watchers', lambda r: r['gateway_rss_kib']['per_1000_watchers'])} | "
            f"{args.note} |\n")


ISSUE17_HEADER = (
    "| when (UTC) | run | host req/s | rush req/s | rush % of host | rush p99 ms | "
    "rush15 req/s / % host / p99 ms | cancel req/s / % host / p99 ms | keyed req/s | "
    "keyed ÷ rush | winners cycles/s | winners p99 ms | winners answers | "
    "winners CPU ms per cycle | by process (wrk apart) | invariants | note |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def issue17_row(results: list[dict], failures: list[str], stamp: str, args) -> str:
    """Issue 17's figures of one run, each rush beside the host measured in the same run."""
    by = {r["scenario"]: r for r in results}
    host = by.get("host", {}).get("requests_per_second")

    def share(name: str) -> str:
        if name not in by or not host:
            return "–"
        return f"{by[name]['requests_per_second'] / host:.1%}"

    def p99(name: str) -> str:
        return f"{by[name]['p99_us'] / 1000:.0f}" if name in by else "–"

    def rps(name: str) -> str:
        return str(by[name]["requests_per_second"]) if name in by else "–"

    def triple(name: str) -> str:
        return f"{rps(name)} / {share(name)} / {p99(name)}" if name in by else "–"

    keyed = "–"
    if "keyed" in by and "rush" in by and by["rush"]["requests_per_second"]:
        keyed = f"{by['keyed']['requests_per_second'] / by['rush']['requests_per_second']:.0%}"
    winners = by.get("winners")
    answers = per_process = total = cycles = "–"
    if winners:
        cycles = str(winners["cycles_per_second"])
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(winners["counts"].items()))
        costs = winners["cpu_ms_per_cycle"]
        total = str(costs.get("total", "–"))
        per_process = ", ".join(f"{k} {v}" for k, v in sorted(
            costs.items(), key=lambda kv: -kv[1]) if k not in ("total", "wrk"))
        per_process += f"; wrk {costs['wrk']}" if "wrk" in costs else ""
    verdict = "FAILED: " + "; ".join(failures) if failures else "ok"
    run = f"{args.seconds}s × c{args.connections}"
    if winners:
        run += f" (winners c{winners['connections']})"
    cells = [stamp, run, str(host or "–"), rps("rush"),
             share("rush"), p99("rush"), triple("rush15"), triple("cancel"), rps("keyed"),
             keyed, cycles, p99("winners"), answers or "–", total, per_process or "–",
             verdict, args.note]
    return "| " + " | ".join(" ".join(c.split()).replace("|", "/") for c in cells) + " |\n"


HEADER = ("| when (UTC) | run | host req/s | rush req/s | rush p50/p99/max ms | rush non-2xx | "
          "browse req/s | ceiling req/s | rush/ceiling | invariants | note |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--url", default=os.environ.get(
        "TTMS_URL", f"http://127.0.0.1:{os.environ.get('TTMS_GATEWAY_PORT', '8080')}"))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--seats", type=int, default=10, help="contested seats")
    parser.add_argument("--scenarios",
                        default="host,ceiling,browse,rush,rush15,cancel,keyed,winners,signin",
                        help="comma-separated, of: " + ", ".join(SCENARIOS)
                        + " (signin is followed by after-signin, sellout by sellout-best)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds, small, no results files: correctness only")
    parser.add_argument("--note", default="")
    parser.add_argument("--winners-connections", type=int, default=60,
                        help="connections of the winners scenario (60: as issue 17's first "
                        "measurement of a cycle's CPU)")
    parser.add_argument("--watchers", type=int, default=5000,
                        help="open streams in the watchers scenario")
    parser.add_argument("--buyers", type=int, default=sellout.BUYERS,
                        help="signed-in customers buying in the sellout scenarios")
    parser.add_argument("--house", default="{}x{}".format(*sellout.HOUSE),
                        help="rows x cols of the sellout scenarios' studio")
    parser.add_argument("--sellout-seconds", type=float, default=600,
                        help="the longest a sellout scenario runs if the house is not sold")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if not 1 <= args.seats <= 30:
        parser.error("--seats: 1 to 30 (a row of the bench's studio)")
    if shutil.which("wrk") is None:
        print("make bench needs wrk (Debian package wrk)", file=sys.stderr)
        return 2
    if args.smoke:
        args.seconds, args.connections, args.users = 2, 16, 8
        args.winners_connections = 16
        args.buyers, args.house = sellout.SMOKE_BUYERS, "{}x{}".format(*sellout.SMOKE_HOUSE)

    scenarios = args.scenarios.split(",")
    if "signin" in scenarios and "after-signin" not in scenarios:
        scenarios.insert(scenarios.index("signin") + 1, "after-signin")
    if "sellout" in scenarios and "sellout-best" not in scenarios:
        scenarios.insert(scenarios.index("sellout") + 1, "sellout-best")
    state = asyncio.run(set_up(args.url, args.users, args.seats))
    if selling := [s for s in scenarios if s in sellout.VARIANTS]:
        rows, cols = (int(n) for n in args.house.split("x"))
        state.update(asyncio.run(sellout.set_up(
            args.url, os.environ.get("TTMS_ADMIN_PASSWORD", "admin-dev-password"),
            args.buyers, rows, cols, selling)))
    results = []
    for scenario in scenarios:
        if scenario == "watchers":
            result = asyncio.run(watchers.run(
                args.url, state, args.watchers, args.seconds,
                watched_processes().get("gateway", []),
                lambda: run_wrk(args.url, "watchers", state, args.seconds, args.connections,
                                args.threads)))
            print(f"watchers {result['streams_opened']} streams: hold → stream "
                  f"{result['probe_delay_ms']} ms, {result['probe_misses']} missed, gateway "
                  f"RSS {result['gateway_rss_kib']} KiB")
        elif scenario in sellout.VARIANTS:
            print(f"{scenario}: {len(state['sellout_buyers'])} buyers start", flush=True)
            result = asyncio.run(sellout.run(args.url, state, scenario,
                                             args.sellout_seconds))
            results.append(result)
            print(f"{scenario}: {'sold out' if result['sold_out'] else 'NOT sold out'} in "
                  f"{result['seconds']} s (all taken at {result['seconds_to_all_taken']} s), "
                  f"{result['paid_seats']} seats paid, {result['paid_seats_per_second']}/s; "
                  f"hold {result['hold']} (won {result['hold_won']}), pay {result['pay']}; "
                  f"hold {result['hold_seconds']} s; {result['purchases']}\n"
                  f"         {result['counts']}\n         cpu s: {result['cpu_seconds']}")
            continue
        else:
            connections = (args.winners_connections if scenario == "winners"
                           else args.connections)
            result = run_wrk(args.url, scenario, state, args.seconds, connections,
                             args.threads)
        results.append(result)
        print(f"{scenario:8s} {result['requests_per_second']:>6} req/s  "
              f"p50 {result['p50_us'] / 1000:.1f} ms  p95 {result['p95_us'] / 1000:.1f} ms  "
              f"p99 {result['p99_us'] / 1000:.1f} ms  max {result['max_us'] / 1000:.0f} ms  "
              f"{result['counts']}  socket errors {result['socket_errors']}")
        print(f"         cpu s: {result['cpu_seconds']}")
        if scenario == "winners":
            print(f"         {result['cycles_per_second']} cycles/s; CPU ms per cycle: "
                  f"{result['cpu_ms_per_cycle']}")
    failures = asyncio.run(invariants.check(args.url, state))
    if "winners" in scenarios:  # its show of its own, every ticket of it refunded
        failures += asyncio.run(invariants.check(
            args.url, {**state, "schedule_id": state["winners_schedule_id"]}))
    sold_out = {r["scenario"]: asyncio.run(sellout.check(args.url, r)) for r in results
                if r["scenario"] in sellout.VARIANTS}
    failures += [f for found in sold_out.values() for f in found]
    for failure in failures:
        print(f"INVARIANT BROKEN: {failure}")
    print("invariants:", "FAILED" if failures else "all hold")
    if not args.smoke:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / f"{stamp}.json").write_text(json.dumps(
            {"when": stamp, "args": vars(args), "results": results,
             "invariant_failures": failures}, indent=2))
        table = HERE / "RESULTS.md"
        text = table.read_text() if table.exists() else ""
        if any(r["scenario"] in ("host", "rush", "browse", "ceiling") for r in results):
            text = add_row(text, "Runs, with the host's own speed (the host scenario)", HEADER,
                           report_row(results, failures, stamp, args))
        if any(r["scenario"] in ("best", "watchers") for r in results):
            text = add_row(text, "Live seat maps: browse, best-available, watchers (issue 14)",
                           LIVE_HEADER, live_row(results, stamp, args))
        if any(r["scenario"] in ("rush15", "cancel", "keyed", "winners") for r in results):
            text = add_row(text, "Issue 17 targets", ISSUE17_HEADER,
                           issue17_row(results, failures, stamp, args))
        if any(r["scenario"] == "signin" for r in results):
            text = add_row(text, "Sign-in storms, and the rush before and right after",
                           SIGNIN_HEADER, signin_row(results, failures, stamp, args))
        host = next((r for r in results if r["scenario"] == "host"), None)
        for r in results:
            if r["scenario"] in sold_out:
                text = add_row(text, "Sell-out (issue 17, part 3)", sellout.HEADER,
                               sellout.row(r, host, sold_out[r["scenario"]], stamp, args.note))
        table.write_text(text)
    return 1 if failures else 0


def add_row(text: str, title: str, header: str, row: str) -> str:
    """``row`` appended to the table under ``header`` (a new section at the end if none)."""
    at = text.rfind(header)
    if at < 0:
        return text + f"\n## {title}\n\n" + header + row
    end = at + len(header)
    while text.startswith("|", end):
        end = text.find("\n", end) + 1 or len(text)
    return text[:end] + row + text[end:]


if __name__ == "__main__":
    sys.exit(main())
