"""``python -m chaos`` (``make chaos``): start TTMS in its own namespace, sign in customers, and
run the on-sale rush once per fault: SIGKILL of each process then a restart, a RabbitMQ
restart, MariaDB stopped for 10 s, every process twice, duplicated and reordered events.
After each fault the invariants are checked (chaos/checks.py). A dated section per run is
appended to chaos/RESULTS.md; the exit status is 1 when an invariant broke or a request hung.

    python -m chaos [--only NAME ...] [--skip-shared] [--seconds S] [--customers N]
                    [--workers W] [--keep] [--cluster]

``--cluster`` runs on the local RabbitMQ and Galera clusters instead (launcher/cluster.py,
started afresh and stopped at the end; the faults are chaos/cluster.py's). The phase
"no fault" (``--only "no fault"``; always first on the cluster) measures the rush's own rate.

The broker restart and the database stop touch the RabbitMQ and MariaDB that other
deployments on this machine share; ``--skip-shared`` leaves them out. Both are always restored
in a ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

import launcher
from chaos import cluster as cluster_faults
from chaos import faults
from chaos.faults import PhaseResult, Target
from chaos.rush import Api, customers, staff
from launcher.cluster import Cluster
from launcher.cluster import settings_env as cluster_env
from messages.broker import delete_namespace
from messages.settings import Settings
from tests.conftest import ADMIN_PASSWORD, TEST_ENV

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = os.environ.get("CHAOS_NAMESPACE", "ttms_chaos")
PORT = os.environ.get("CHAOS_PORT", "18808")
# A smaller pool than the default 10 (+5): the MariaDB server is shared (max_connections 151
# here), and "every process twice" doubles what this namespace holds.
ENV = {**TEST_ENV, "TTMS_NAMESPACE": NAMESPACE, "TTMS_GATEWAY_PORT": PORT,
       "TTMS_DB_POOL_SIZE": os.environ.get("CHAOS_DB_POOL_SIZE", "5")}
# While the gateway itself is down, clients see refused connections.
GATEWAY_DOWN = frozenset({"409", "503", "504", "conn_error"})
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
CLUSTER_NAMESPACE = "ttms_chaos_cluster"


def _use_cluster() -> None:
    """Point ENV at the local clusters (every broker node, HAProxy, two of every process)."""
    global NAMESPACE
    NAMESPACE = CLUSTER_NAMESPACE
    ENV.update(cluster_env(CLUSTER_NAMESPACE, int(PORT)))


def _settings() -> Settings:
    return Settings(**{k.removeprefix("TTMS_").lower(): v for k, v in ENV.items()})


def _reset(settings: Settings) -> None:
    """Drop the namespace's databases and delete its queues and exchanges."""
    subprocess.run([sys.executable, "-m", "migrations", "drop"], cwd=ROOT, check=True,
                   env={**os.environ, **ENV}, capture_output=True)
    asyncio.run(delete_namespace(settings.amqp_url, settings.names))


def plan(args: argparse.Namespace) -> list[tuple[str, faults.Fault | None, dict]]:
    s = args.seconds
    phases: list[tuple[str, faults.Fault | None, dict]] = [
        (f"SIGKILL {name}, restart after 2 s", faults.kill(name), {"fault_at": s / 3}
         | ({"allowed": GATEWAY_DOWN} if name == "gateway" else {}))
        for name in launcher.SERVICES]
    if not args.skip_shared:
        phases.append(("RabbitMQ stop_app 3 s, start_app", faults.broker_restart(3.0),
                       {"fault_at": s / 3}))
        phases.append(("MariaDB stopped 10 s (SIGSTOP/SIGCONT)", faults.database_freeze(10.0),
                       {"fault_at": s / 4, "seconds": max(s, 24)}))
    phases.append(("every process running twice", faults.doubled(max(6.0, s / 2)),
                   {"fault_at": s / 4}))
    phases.append(("duplicated and reordered events, and a replay", None,
                   {"fault_at": s / 2, "make_fault": lambda since: faults.duplicated_events(
                       since, copies=2, replay=True)}))
    if args.only:  # the rush's own rate, only when asked for
        phases.append((faults.NO_FAULT, faults.nothing, {"fault_at": s / 2}))
    if args.cluster:
        phases = cluster_faults.plan(args.cluster, s)
    if args.only:
        phases = [p for p in phases if any(o.lower() in p[0].lower() for o in args.only)]
    return phases


async def run(args: argparse.Namespace, url: str) -> list[PhaseResult]:
    settings = _settings()
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        api = Api(session, url)
        manager = await staff(api, ADMIN_PASSWORD, "manager")
        people = await customers(api, args.customers)
        target = Target(url, ENV, Path(args.run_dir), settings, api, manager, people)
        results = []
        for name, fault, options in plan(args):
            print(f"chaos: {name} …", flush=True)
            # 2,000 seats: the rush must not sell the show out before the fault is over
            options = {"seconds": args.seconds, "workers": args.workers, "rows": 40,
                       "cols": 50, **options}
            try:
                result = await faults.phase(target, name, fault, **options)
            except Exception as exc:  # noqa: BLE001 - report it, go on with the next fault
                result = PhaseResult(name, {"sent": 0, "accepted": 0, "refused": {},
                                            "hangs": 0, "paid": 0, "refunded": 0}, 0, 0,
                                     None, None, faults.checks.Verdict(), [],
                                     f"{type(exc).__name__}: {exc}")
            print("\n".join(faults.describe(result)), flush=True)
            results.append(result)
    return results


def write_results(results: list[PhaseResult], args: argparse.Namespace, took: float,
                  reconcile: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lost = sum(r.verdict.lost for r in results)
    where = ("on the local clusters (`launcher/cluster.py`: three RabbitMQ nodes, three "
             "Galera nodes behind HAProxy, two processes of every service and of the "
             "gateway)" if args.cluster else "")
    lines = [f"## Run of {stamp}" + (" — cluster" if args.cluster else ""), "",
             f"`python -m chaos{' --cluster' if args.cluster else ''}` {where} in namespace "
             f"`{NAMESPACE}`: {args.customers} customers, "
             f"{args.workers} concurrent clients, {args.seconds:.0f} s of rush per fault, "
             f"hold {ENV['TTMS_HOLD_SECONDS']} s, sweep every "
             f"{ENV['TTMS_SWEEP_INTERVAL_SECONDS']} s; {took:.0f} s in all. "
             f"{sum(r.ok for r in results)}/{len(results)} faults passed, "
             f"{lost} requests lost.", "",
             "| fault | sent | accepted | refused | lost | hangs | slowest during fault "
             "| ready after restore | first sale after restore | back to 80% of the rate "
             "| rush req/s | sales while in force | invariants |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r.summary
        refused = sum(s["refused"].values())
        lines.append(
            f"| {r.name} | {s['sent']} | {s['accepted']} | {refused} | {r.verdict.lost} "
            f"| {s['hangs']} | {r.slowest_during:.2f}s "
            f"| {'?' if r.ready_in is None else f'{r.ready_in:.1f}s'} "
            f"| {'?' if r.recovered_in is None else f'{r.recovered_in:.1f}s'} "
            f"| {'?' if r.back_in is None else f'{r.back_in:.1f}s'} | {r.rate:.0f} "
            f"| {r.during[0]} in {r.during[1]:.0f}s "
            f"| {'ok' if r.verdict.ok and not r.error else 'BROKEN'} |")
    lines += ["", f"Whole-namespace `python -m order_svc.tools reconcile --wait 10`: {reconcile}",
              ""]
    for r in results:
        lines += faults.describe(r)
    with open(RESULTS, "a") as out:
        out.write("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", help="faults whose name contains one of these")
    parser.add_argument("--skip-shared", action="store_true",
                        help="leave out the broker restart and the database stop")
    parser.add_argument("--seconds", type=float, default=15.0, help="rush per fault")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--workers", type=int, default=16, help="concurrent clients")
    parser.add_argument("--run-dir", default=str(ROOT / "run" / NAMESPACE))
    parser.add_argument("--keep", action="store_true", help="leave the system running")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--cluster", action="store_true",
                        help="on the local RabbitMQ and Galera clusters (launcher/cluster.py)")
    args = parser.parse_args(argv)
    began = time.monotonic()
    if args.cluster:
        _use_cluster()
        args.cluster = Cluster()
        args.cluster.down()
        args.cluster.up(ttms=False)
        args.run_dir = str(args.cluster.run_dir)
    run_dir = Path(args.run_dir)
    launcher.down(run_dir)
    if not args.cluster:  # a fresh cluster has nothing to reset
        _reset(_settings())
    try:
        url = launcher.up(run_dir, ENV, timeout=300 if args.cluster else 120)
    except BaseException:
        if args.cluster:
            args.cluster.down()
        raise
    print(f"chaos: TTMS up at {url} (namespace {NAMESPACE}, logs in {run_dir / 'logs'})")
    results: list[PhaseResult] = []
    reconciled = False
    reconcile = "not run"
    try:
        results = asyncio.run(run(args, url))
        done = subprocess.run([sys.executable, "-m", "order_svc.tools", "reconcile", "--wait",
                               "10"], cwd=ROOT, env={**os.environ, **ENV}, capture_output=True,
                              text=True, timeout=120)
        reconciled = done.returncode == 0
        reconcile = (f"exit {done.returncode}, "
                     f"{(done.stdout + done.stderr).strip().splitlines()[-1:]}")
    finally:
        if not args.keep:
            launcher.down(run_dir)
            if args.cluster:
                args.cluster.down()
        if results and not args.no_results:
            write_results(results, args, time.monotonic() - began, reconcile)
            print(f"chaos: results appended to {RESULTS}")
    failed = [r.name for r in results if not r.ok] + ([] if reconciled
                                                      else ["whole-namespace reconcile"])
    if failed:
        print(f"chaos: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"chaos: all {len(results)} faults passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
