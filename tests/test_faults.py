"""Faults through the whole system: a service killed under load, a service down, the broker
restarted or dropping every connection. Every process must recover by itself.

The broker tests restart the *shared* RabbitMQ (``rabbitmqctl stop_app`` / ``start_app``) for
a few seconds: other engineers' services reconnect by themselves too. ``start_app`` always
runs, in a ``finally``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from messages import errors
from tests.bus_service import (  # noqa: F401 - bus_fixture is the fixture `bus`
    ALICE,
    NS,
    Pinged,
    bus_fixture,
    key,
    wait_for,
)
from tests.conftest import NAMESPACE, Answer, sign_in
from tests.test_bus import close_connections

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"


def _is_problem(answer: Answer, *codes: str) -> bool:
    return answer.headers.get("Content-Type", "").startswith(PROBLEM) and answer.code in codes


async def _timed(coro) -> tuple[float, object]:
    started = time.monotonic()
    try:
        result = await coro
    except Exception as exc:  # noqa: BLE001 - the caller looks at what came back
        result = exc
    return time.monotonic() - started, result


async def _ready(api) -> bool:
    try:
        return (await api.get("/readyz")).status == 200
    except Exception:  # noqa: BLE001 - the gateway may be busy reconnecting
        return False


# -- a service killed or down ---------------------------------------------------------------

async def test_down_service_is_named_by_readyz_and_answers_503_quickly(system, api):
    assert (await api.get("/readyz")).status == 200
    system.kill("user_svc")
    try:
        killed = time.monotonic()
        ready = await wait_for(lambda: _readyz_names(api, "user"), 5, 0.1, "readyz 503")
        assert ready.status == 503 and _is_problem(ready, "service_unavailable")
        # once the gateway has seen the queue without consumers (≤ 1 s), calls are 503 at once
        await asyncio.sleep(max(0.0, 1.2 - (time.monotonic() - killed)))
        for _ in range(5):
            elapsed, answer = await _timed(api.post("/auth/login", {"username": "nobody1",
                                                                    "password": "whatever1"}))
            assert answer.status == 503 and _is_problem(answer, "service_unavailable"), answer
            assert elapsed < 0.5, elapsed
        assert time.monotonic() - killed < 3
    finally:
        system.start("user_svc")
    await wait_for(lambda: _ready(api), 30, 0.2, "ready again")
    assert (await api.post("/auth/login", {"username": "nobody1", "password": "whatever1"})
            ).status == 401


async def _readyz_names(api, service: str) -> Answer | None:
    answer = await api.get("/readyz")
    if answer.status == 503 and service in (answer.body or {}).get("detail", "") + str(
            answer.body):
        return answer
    return None


async def test_user_svc_killed_under_load_loses_no_acknowledged_command(system, api, admin):
    """Registrations keep coming while user_svc is SIGKILLed and started again: every one that
    got 201 exists afterwards; the others got 503/504 problem+json, at the latest at the
    deadline (5 s), never a hang."""
    results: list[tuple[str, int, float, str | None]] = []
    stop_at = time.monotonic() + 9
    prefix = f"ld{os.getpid() % 10000}_{key()[:4]}"
    counter = iter(range(1_000_000))

    async def worker() -> None:
        while time.monotonic() < stop_at:
            username = f"{prefix}_{next(counter)}"
            elapsed, answer = await _timed(api.post(
                "/auth/register", {"username": username, "password": "password123"}))
            if isinstance(answer, Exception):
                results.append((username, -1, elapsed, repr(answer)))
                continue
            results.append((username, answer.status, elapsed, answer.code))
            if answer.status != 201:
                assert _is_problem(answer, "service_unavailable", "timeout"), answer
                await asyncio.sleep(0.05)

    async def chaos() -> None:
        await asyncio.sleep(2)
        await asyncio.to_thread(system.kill, "user_svc")
        await asyncio.sleep(2)
        await asyncio.to_thread(system.start, "user_svc")

    await asyncio.gather(chaos(), *(worker() for _ in range(16)))
    statuses = [r[1] for r in results]
    # A registration the killed user_svc had committed but not acked is run again by the new
    # one (commands are delivered at least once); it must answer 201 with that same account,
    # never 409 for a name nobody else used.
    created = [r[0] for r in results if r[1] == 201]
    print(f"\n{len(results)} registrations: {statuses.count(201)} created, "
          f"{statuses.count(503)} 503, {statuses.count(504)} 504, "
          f"slowest answer {max(r[2] for r in results):.2f}s")
    assert set(statuses) <= {201, 503, 504}, [r for r in results
                                              if r[1] not in (201, 503, 504)]
    # the outage was felt: answers failed, or waited for the new user_svc (which then took
    # the commands left in the queue: when it is back within their deadline, all succeed)
    assert statuses.count(201) < len(statuses) or max(r[2] for r in results) > 1.0
    assert max(r[2] for r in results) < 6.5  # the 5 s deadline, plus a little
    await wait_for(lambda: _ready(api), 30, 0.2, "ready again")
    # every 201 is a real account: it can sign in (and one created later still works)
    failed = []
    for username in created:
        answer = await api.post("/auth/login", {"username": username, "password": "password123"})
        if answer.status != 200:
            failed.append((username, answer.status, answer.body))
            continue
        # then deleted again, so that the hundreds of accounts made here do not crowd the
        # first pages of GET /users for the tests that run after this one
        me = await api.as_(answer.body["access_token"]).get("/users/me")
        assert me.status == 200, me.body
        assert (await admin.delete(f"/users/{me.body['id']}")).status == 204
    assert failed == []
    assert len(created) > 20


# -- the broker goes away -------------------------------------------------------------------

def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


async def _check_everything_works(system, api, bus, victim, admin) -> dict[str, float]:
    """After the broker came back: gateway RPC, readyz, the test service's RPC server,
    events through a quorum-queue subscriber, and the gateway's token-revocation listener.
    Returns how long each took to work again."""
    started = time.monotonic()
    took: dict[str, float] = {}

    async def me_ok() -> bool:
        try:
            return (await victim.get("/users/me")).status == 200
        except Exception:  # noqa: BLE001
            return False

    await wait_for(me_ok, 60, 0.1, "gateway → user_svc RPC")
    took["gateway rpc"] = time.monotonic() - started
    await wait_for(lambda: _ready(api), 60, 0.1, "readyz 200")
    took["readyz"] = time.monotonic() - started

    async def bus_rpc_ok() -> bool:
        try:
            return (await bus.rpc.call("bt.echo", {"text": "back"}, ALICE))["text"] == "back"
        except errors.ServiceError:
            return False

    await wait_for(bus_rpc_ok, 60, 0.1, "bus RPC")
    took["bus rpc"] = time.monotonic() - started
    k = key()
    async with bus.bt_db.transaction() as tx:
        tx.emit(Pinged(key=k))
    await wait_for(lambda: bus.effects(k), 30, 0.1, "an event after the restart")
    took["events"] = time.monotonic() - started
    # the gateway's exclusive listener queue is bound again: a disable revokes at once
    answer = await admin.patch(f"/users/{victim.user['id']}", {"disabled": True})
    assert answer.status == 200, answer.body

    async def revoked() -> bool:
        return (await victim.get("/users/me")).status == 401

    await wait_for(revoked, 2, 0.05, "the revocation to reach the gateway")
    return took


async def _during_outage(api, bus, victim) -> dict[str, float]:
    """While the broker is down: quick 503s, never a hang."""
    seen: dict[str, float] = {}
    elapsed, answer = await _timed(victim.get("/users/me"))
    assert answer.status == 503 and _is_problem(answer, "service_unavailable"), answer
    seen["gateway call"] = elapsed
    elapsed, answer = await _timed(api.get("/readyz"))
    assert answer.status == 503, answer
    seen["readyz"] = elapsed
    elapsed, error = await _timed(bus.rpc.call("bt.echo", {}, ALICE))
    assert isinstance(error, errors.ServiceUnavailable), error
    seen["bus call"] = elapsed
    assert max(seen.values()) < 1.0, seen
    return seen


async def _fresh_victim(api, admin):
    username = f"victim_{key()[:10]}"
    answer = await admin.post("/users", {"username": username, "password": "password123",
                                         "role": "customer"})
    assert answer.status == 201, answer.body
    return await sign_in(api, username, "password123")


async def test_broker_restart_needs_no_process_restart(system, api, admin, bus):
    victim = await _fresh_victim(api, admin)
    assert (await victim.get("/users/me")).status == 200
    assert (await bus.rpc.call("bt.echo", {"text": "before"}, ALICE))["text"] == "before"
    during_key = key()
    stopped = time.monotonic()
    try:
        await asyncio.to_thread(_rabbitmqctl, "stop_app")
        stop_took = time.monotonic() - stopped
        # the services notice the closed connections
        await wait_for(lambda: bus.broker.connection is None, 10, 0.05, "the client to notice")
        outage = await _during_outage(api, bus, victim)
        # an event committed while the broker is down waits in the outbox
        async with bus.bt_db.transaction() as tx:
            tx.emit(Pinged(key=during_key))
    finally:
        restarted = time.monotonic()
        await asyncio.to_thread(_rabbitmqctl, "start_app")
        start_took = time.monotonic() - restarted
    took = await _check_everything_works(system, api, bus, victim, admin)
    await wait_for(lambda: bus.effects(during_key), 30, 0.1, "the event from the outage")
    print(f"\nbroker stop_app {stop_took:.1f}s, start_app {start_took:.1f}s; during the "
          f"outage {', '.join(f'{k} {v * 1000:.0f}ms' for k, v in outage.items())}; after "
          f"start_app returned, working again: "
          f"{', '.join(f'{k} {v:.1f}s' for k, v in took.items())}")


async def test_connections_closed_by_the_broker_are_rebuilt(system, api, admin, bus):
    victim = await _fresh_victim(api, admin)
    assert (await victim.get("/users/me")).status == 200
    before = bus.broker.connection
    # only this test run's connections: the system's (<ns>-…) and the bus tests' (<ns>_bus-…)
    closed = await close_connections(f"{NAMESPACE}-") + await close_connections(f"{NS}-")
    assert closed >= 8, closed  # six processes, the bus service and the bus client
    await wait_for(lambda: bus.broker.connection is not before, 10, 0.05, "the close")
    took = await _check_everything_works(system, api, bus, victim, admin)
    print(f"\nafter the broker closed {closed} connections, working again: "
          f"{', '.join(f'{k} {v:.1f}s' for k, v in took.items())}")
