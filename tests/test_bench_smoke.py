"""The benchmark's smoke run (CI): a few seconds of each scenario against the test system,
for correctness and invariants only — speed is measured by `make bench`, never asserted."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from bench.__main__ import HEADER, report_row, run_wrk, set_up
from bench.invariants import check


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make test`")
async def test_bench_scenarios_run_and_keep_the_invariants(system, monkeypatch):
    for key, value in system.env.items():
        monkeypatch.setenv(key, value)
    state = await set_up(system.url, users=8, seats=4)
    for scenario in ("host", "ceiling", "browse", "rush", "refusals", "keyed"):
        result = await asyncio.to_thread(run_wrk, system.url, scenario, state, 2, 16, 2)
        assert result["requests"] > 0 and result["socket_errors"] == 0, result
        unexpected = {k: v for k, v in result["counts"].items()
                      if k not in ("200", "201", "409:seat_unavailable")}
        assert not unexpected, (scenario, result["counts"])
        if scenario == "refusals":  # the seat was sold in set-up: nothing else is possible
            assert set(result["counts"]) == {"409:seat_unavailable"}, result["counts"]
        if scenario == "host":  # the hello server alone, measured, and stopped after
            assert set(result["counts"]) == {"200"}
            assert set(result["cpu_seconds"]) == {"hello", "wrk"}, result["cpu_seconds"]
    assert await check(system.url, state) == []


def test_a_results_row_has_a_cell_for_every_column():
    class Args:
        seconds, connections, note = 15.0, 200, "a note"

    results = [{"scenario": name, "requests_per_second": rps, "p50_us": 1000, "p99_us": 2000,
                "max_us": 3000, "counts": {"200": 1, "409:seat_unavailable": 2}}
               for name, rps in (("host", 9000), ("ceiling", 5000), ("rush", 1500))]
    row = report_row(results, [], "2026-11-26T06:00:00Z", Args)
    cells = row.strip().strip("|").split(" | ")
    columns = HEADER.splitlines()[0].strip().strip("|").split(" | ")
    assert len(cells) == len(columns)
    by_column = dict(zip(columns, cells, strict=True))
    assert by_column["host req/s"] == "9000"
    assert by_column["rush/ceiling"] == "30%"
    assert by_column["rush non-2xx"] == "409:seat_unavailable: 2"
