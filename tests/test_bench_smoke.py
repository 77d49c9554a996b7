"""The benchmark's smoke run (CI): a few seconds of each scenario against the test system,
for correctness and invariants only — speed is measured by `make bench`, never asserted."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from bench.__main__ import HEADER, SIGNIN_HEADER, report_row, run_wrk, set_up, signin_row
from bench.invariants import check


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make test`")
async def test_bench_scenarios_run_and_keep_the_invariants(system, monkeypatch):
    for key, value in system.env.items():
        monkeypatch.setenv(key, value)
    state = await set_up(system.url, users=8, seats=4)
    for scenario in ("host", "ceiling", "browse", "rush", "refusals", "keyed", "signin",
                     "after-signin"):
        result = await asyncio.to_thread(run_wrk, system.url, scenario, state, 2, 16, 2)
        assert result["requests"] > 0 and result["socket_errors"] == 0, result
        # A sign-in storm: signed in, refused by the per-username limit (the tests keep it at
        # 10 a minute), or refused at once when hashing is full; never a 504 or another 5xx.
        allowed = (("200", "429:rate_limited", "503:service_unavailable")
                   if scenario == "signin" else ("200", "201", "409:seat_unavailable"))
        unexpected = {k: v for k, v in result["counts"].items() if k not in allowed}
        assert not unexpected, (scenario, result["counts"])
        if scenario == "refusals":  # the seat was sold in set-up: nothing else is possible
            assert set(result["counts"]) == {"409:seat_unavailable"}, result["counts"]
        if scenario == "signin":
            assert result["counts"].get("200", 0) > 0, result["counts"]
        if scenario == "host":  # the hello server alone, measured, and stopped after
            assert set(result["counts"]) == {"200"}
            assert set(result["cpu_seconds"]) == {"hello", "wrk"}, result["cpu_seconds"]
    assert await check(system.url, state) == []


def cells_by_column(row: str, header: str) -> dict[str, str]:
    """A Markdown table row's cells by the column names of the header's first line; there
    must be exactly one cell per column."""
    cells = row.strip().strip("|").split(" | ")
    columns = header.splitlines()[0].strip().strip("|").split(" | ")
    assert len(cells) == len(columns)
    return dict(zip(columns, cells, strict=True))


def test_a_results_row_has_a_cell_for_every_column():
    class Args:
        seconds, connections, note = 15.0, 200, "a note"

    results = [{"scenario": name, "requests_per_second": rps, "p50_us": 1000, "p99_us": 2000,
                "max_us": 3000, "counts": {"200": 1, "409:seat_unavailable": 2}}
               for name, rps in (("host", 9000), ("ceiling", 5000), ("rush", 1500))]
    by_column = cells_by_column(report_row(results, [], "2026-11-26T06:00:00Z", Args), HEADER)
    assert by_column["host req/s"] == "9000"
    assert by_column["rush/ceiling"] == "30%"
    assert by_column["rush non-2xx"] == "409:seat_unavailable: 2"


def test_a_signin_row_has_a_cell_for_every_column():
    class Args:
        seconds, connections, note = 10.0, 200, "a note"

    def result(name: str, rps: int, counts: dict) -> dict:
        return {"scenario": name, "requests_per_second": rps, "p50_us": 1000, "p99_us": 2000,
                "max_us": 3000, "counts": counts, "cpu_seconds": {"user_svc": 0.5}}

    results = [result("rush", 1500, {"200": 1}),
               {**result("signin", 900, {"200": 80, "503:service_unavailable": 820}),
                "signins_per_second": 8.0},
               result("after-signin", 1490, {"200": 1})]
    by_column = cells_by_column(signin_row(results, [], "2026-12-01T15:00:00Z", Args),
                                SIGNIN_HEADER)
    assert by_column["sign-ins/s (200)"] == "8.0"
    assert by_column["signin answers"] == "200: 80, 503:service_unavailable: 820"
    assert by_column["rush after signin req/s"] == "1490"
    assert by_column["user_svc CPU s during it"] == "0.5"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make test`")
async def test_the_live_seat_scenarios_run(system, monkeypatch):
    """Issue 14's best and watchers scenarios, a few seconds each, small."""
    from bench import watchers
    from bench.__main__ import LIVE_HEADER, live_row
    from bench.processes import watched_processes

    for key, value in system.env.items():
        monkeypatch.setenv(key, value)
    state = await set_up(system.url, users=8, seats=4)
    best = await asyncio.to_thread(run_wrk, system.url, "best", state, 2, 16, 2)
    assert best["requests"] > 0 and best["socket_errors"] == 0, best
    assert best["counts"].get("201", 0) > 0, best["counts"]
    assert set(best["counts"]) <= {"200", "201", "409:seat_unavailable", "409:conflict"}, \
        best["counts"]
    watched = await watchers.run(
        system.url, state, 20, 2, watched_processes(system.run_dir).get("gateway", []),
        lambda: run_wrk(system.url, "watchers", state, 2, 8, 1))
    assert watched["streams_opened"] == 20, watched
    assert watched["probes"] > 0 and watched["probe_delay_ms"]["p50"] is not None, watched
    assert await check(system.url, state) == []

    class Args:
        seconds, connections, note = 2, 16, "smoke"

    row = live_row([best, watched], "2026-12-01T16:00:00Z", Args)
    columns = LIVE_HEADER.splitlines()[0].strip().strip("|").split(" | ")
    assert len(row.strip().strip("|").split(" | ")) == len(columns)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make test`")
def test_a_small_house_sells_out_named_and_best_available(system, monkeypatch, capsys):
    """Issue 17's sell-out through `python -m bench --smoke`: a small house, a few buyers, the
    walked-away holds expiring (the tests' holds last 6 s), the invariants after."""
    from bench.__main__ import main

    for key, value in system.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TTMS_RUN_DIR", str(system.run_dir))
    assert main(["--url", system.url, "--smoke", "--scenarios", "sellout"]) == 0
    out = capsys.readouterr().out
    assert "sellout: sold out" in out and "sellout-best: sold out" in out, out
    assert "invariants: all hold" in out, out


def test_a_sellout_row_has_a_cell_for_every_column():
    from bench.sellout import HEADER, row

    result = {"variant": "named", "house": "50x100", "capacity": 5000, "buyers": 2000,
              "hold_seconds": 10.0, "sold_out": True, "seconds": 61.2,
              "seconds_to_all_taken": 20.5, "paid_seats": 5000, "paid_seats_per_second": 81.7,
              "paid_seats_per_second_to_all_taken": 200.1,
              "hold": {"p50_ms": 50.0, "p99_ms": 400.0},
              "hold_won": {"p50_ms": 60.0, "p99_ms": 500.0},
              "pay": {"p50_ms": 40.0, "p99_ms": 300.0},
              "purchases": {"paid": 2000, "walked away": 350},
              "counts": {"hold 201": 2350, "hold 409:seat_unavailable": 900, "pay 200": 2000},
              "cpu_seconds": {"gateway": 10.5, "ticket_svc": 12.0, "bench": 8.0}}
    line = row(result, {"requests_per_second": 30000}, [], "2026-12-01T18:00:00Z", "a note")
    cells = line.strip().strip("|").split(" | ")
    columns = HEADER.splitlines()[0].strip().strip("|").split(" | ")
    assert len(cells) == len(columns)
    by_column = dict(zip(columns, cells, strict=True))
    assert by_column["seconds to sell out (all taken)"] == "61.2 (20.5)"
    assert by_column["host req/s"] == "30000"
    assert by_column["hold p50/p99 ms (won)"] == "50.0/400.0 (60.0/500.0)"


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make test`")
async def test_the_issue_17_scenarios_run(system, monkeypatch):
    """rush15, cancel, keyed and winners, two seconds each, and their row. The winners' house
    is small (32 seats, 16 per wrk thread of 8 connections) so that in two seconds seats are
    held again after their refund: those holds must all succeed."""
    from bench.__main__ import ISSUE17_HEADER, issue17_row

    for key, value in system.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("TTMS_RUN_DIR", str(system.run_dir))  # the test system's processes
    state = await set_up(system.url, users=8, seats=4, winners_house=(2, 16))
    results = []
    for scenario in ("host", "rush", "rush15", "cancel", "keyed", "winners"):
        result = await asyncio.to_thread(run_wrk, system.url, scenario, state, 2, 16, 2)
        assert result["requests"] > 0 and result["socket_errors"] == 0, result
        results.append(result)
    by = {r["scenario"]: r for r in results}
    assert set(by["rush15"]["counts"]) <= {"200", "201", "409:seat_unavailable"}
    # A winner cancels instead of paying: holds (201), cancels (204), refusals, no payment.
    assert set(by["cancel"]["counts"]) <= {"201", "204", "409:seat_unavailable"}, \
        by["cancel"]["counts"]
    assert by["cancel"]["counts"].get("204", 0) > 0, by["cancel"]["counts"]
    winners = by["winners"]
    assert set(winners["counts"]) == {"hold 201", "pay 200", "refund 200"}, winners["counts"]
    assert winners["cycles"] > 32, winners  # more cycles than seats: refunded seats held again
    assert winners["cycles_per_second"] > 0
    costs = winners["cpu_ms_per_cycle"]
    assert {"gateway", "ticket_svc", "mariadb", "rabbitmq", "total", "wrk"} <= set(costs)
    assert costs["total"] >= costs["ticket_svc"] > 0
    assert await check(system.url, state) == []
    assert await check(system.url, {**state, "schedule_id": state["winners_schedule_id"]}) == []

    class Args:
        seconds, connections, note = 2, 16, "smoke"

    by_column = cells_by_column(issue17_row(results, [], "2026-12-01T21:00:00Z", Args),
                                ISSUE17_HEADER)
    assert by_column["host req/s"] == str(by["host"]["requests_per_second"])
    assert by_column["winners cycles/s"] == str(winners["cycles_per_second"])
    assert by_column["winners CPU ms per cycle"] == str(costs["total"])
    assert by_column["rush15 req/s / % host / p99 ms"].startswith(
        f"{by['rush15']['requests_per_second']} / ")
    assert by_column["invariants"] == "ok"


def test_an_issue_17_row_has_a_cell_for_every_column():
    from bench.__main__ import ISSUE17_HEADER, issue17_row

    class Args:
        seconds, connections, note = 8.0, 200, "a note"

    def result(name: str, rps: int, **more) -> dict:
        return {"scenario": name, "requests_per_second": rps, "p50_us": 1000, "p99_us": 80000,
                "max_us": 3000, "counts": {"200": 1}, "connections": 200, **more}

    results = [result("host", 20000), result("rush", 5000), result("rush15", 6000),
               result("cancel", 4000), result("keyed", 4000),
               result("winners", 600, connections=60, cycles_per_second=200.0,
                      counts={"hold 201": 10, "pay 200": 10, "refund 200": 9},
                      cpu_ms_per_cycle={"gateway": 1.0, "ticket_svc": 2.5, "total": 3.5,
                                        "wrk": 0.2})]
    by_column = cells_by_column(issue17_row(results, [], "2026-12-01T21:00:00Z", Args),
                                ISSUE17_HEADER)
    expected = {"run": "8.0s × c200 (winners c60)", "rush % of host": "25.0%",
                "rush p99 ms": "80", "rush15 req/s / % host / p99 ms": "6000 / 30.0% / 80",
                "cancel req/s / % host / p99 ms": "4000 / 20.0% / 80", "keyed ÷ rush": "80%",
                "winners CPU ms per cycle": "3.5",
                "by process (wrk apart)": "ticket_svc 2.5, gateway 1.0; wrk 0.2"}
    assert {column: by_column[column] for column in expected} == expected
    assert by_column["winners answers"] == "hold 201: 10, pay 200: 10, refund 200: 9"
