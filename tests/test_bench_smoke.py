"""The benchmark's smoke run (CI): a few seconds of each scenario against the test system,
for correctness and invariants only — speed is measured by `make bench`, never asserted."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from bench.__main__ import run_wrk, set_up
from bench.invariants import check


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is installed by `make test`")
async def test_bench_scenarios_run_and_keep_the_invariants(system, monkeypatch):
    for key, value in system.env.items():
        monkeypatch.setenv(key, value)
    state = await set_up(system.url, users=8, seats=4)
    for scenario in ("ceiling", "browse", "rush", "refusals"):
        result = await asyncio.to_thread(run_wrk, system.url, scenario, state, 2, 16, 2)
        assert result["requests"] > 0 and result["socket_errors"] == 0, result
        unexpected = {k: v for k, v in result["counts"].items()
                      if k not in ("200", "201", "409:seat_unavailable")}
        assert not unexpected, (scenario, result["counts"])
        if scenario == "refusals":  # the seat was sold in set-up: nothing else is possible
            assert set(result["counts"]) == {"409:seat_unavailable"}, result["counts"]
    assert await check(system.url, state) == []
