"""A broker restart with a seat-map watcher connected (issue 14): the watcher's map ends equal
to ticket_svc's rows. The whole system runs in a namespace of its own on a PRIVATE RabbitMQ
node (tests/private_servers.py), stopped and started again on the same port; the shared
broker is never touched. The database is the shared MariaDB, in that namespace's databases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import aiohttp
import pytest

import launcher
from messages.settings import Settings
from tests import private_servers
from tests.catalogue import make_show
from tests.conftest import ADMIN_PASSWORD, NAMESPACE, ROOT, TEST_ENV, Client
from tests.processes import until_ready
from tests.test_live_seats import open_stream, ticket_rows

NS = f"{NAMESPACE}_brk"


def _migrations(env: dict[str, str], command: str) -> None:
    subprocess.run([sys.executable, "-m", "migrations", command], cwd=ROOT, check=True,
                   env={**os.environ, **env}, capture_output=True)


class _System:
    def __init__(self, settings: Settings, run_dir) -> None:
        self.settings, self.run_dir = settings, run_dir


async def _retrying(send):
    for _ in range(60):
        answer = await send()
        if answer.status not in (503, 504):
            return answer
        await asyncio.sleep(0.5)
    return answer


def test_a_broker_restart_with_a_watcher_ends_with_ticket_svcs_rows(tmp_path):
    server = private_servers.start_rabbitmq(f"{NS}_rmq")
    if server is None:
        pytest.skip("no RabbitMQ binaries (/usr/lib/rabbitmq/bin/rabbitmq-server, erl)")
    port = private_servers.free_port()
    env = {**TEST_ENV, "TTMS_NAMESPACE": NS, "TTMS_GATEWAY_PORT": str(port),
           "TTMS_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{server.port}/"}
    run_dir = tmp_path / "run"
    servers = [server]  # the last one runs, also when the test fails after the restart
    try:
        _migrations(env, "drop")
        url = launcher.up(run_dir, env, timeout=120)
        settings = Settings(**{k.removeprefix("TTMS_").lower(): v for k, v in env.items()})
        asyncio.run(_watch_through_a_restart(url, servers, _System(settings, run_dir)))
    finally:
        launcher.down(run_dir)
        servers[-1].stop()
        _migrations(env, "drop")


async def _watch_through_a_restart(url: str, servers: list, system: _System) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        api = Client(session, url)
        login = await api.post("/auth/login", {"username": "admin",
                                               "password": ADMIN_PASSWORD})
        admin = api.as_(login.body["access_token"])
        await api.post("/auth/register", {"username": "watcher_buyer", "password": "pw-123456"})
        login = await api.post("/auth/login", {"username": "watcher_buyer",
                                               "password": "pw-123456"})
        buyer = api.as_(login.body["access_token"])
        show = await make_show(admin, rows=3, cols=3)
        response, stream = await open_stream(api, show)
        seats: dict[tuple[int, int], str] = {}

        def apply(kind: str, data: dict) -> None:
            if kind == "snapshot":
                seats.clear()
            for s in data["seats"]:
                seats[s["row"], s["col"]] = s["status"]

        try:
            kind, _, data = await stream.next()
            apply(kind, data)
            assert (await buyer.post("/reservations", {
                "schedule_id": show["id"], "seats": [{"row": 1, "col": 1}]})).status == 201
            kind, _, data = await stream.next()
            apply(kind, data)
            assert seats[1, 1] == "held"

            servers[-1].stop()  # the broker goes, and comes back empty on the same port
            servers.append(private_servers.start_rabbitmq(f"{NS}_rmq", port=servers[-1].port))
            await until_ready(api, within=90, interval=0.5)
            held = await _retrying(lambda: buyer.post("/reservations", {
                "schedule_id": show["id"], "seats": [{"row": 2, "col": 2}]}))
            assert held.status == 201, held.body
            deadline = time.monotonic() + 30
            while True:
                _, truth = await ticket_rows(system, show)
                if seats == truth:
                    break
                assert time.monotonic() < deadline, (seats, truth)
                try:
                    kind, _, data = await stream.next(timeout=2)
                    apply(kind, data)
                except TimeoutError:
                    pass
            assert seats[2, 2] == "held"
        finally:
            response.close()
