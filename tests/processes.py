"""Processes a test starts beside the session's system — one more gateway, or one more process
of a service on the same command queue — stopped when the test is done; and waiting until a
gateway is ready or a queue has more consumers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import aio_pika
import aiohttp

from messages.rpc import RpcClient
from tests.conftest import ROOT, Client, System
from tests.private_servers import free_port
from tests.waiting import eventually


@contextlib.contextmanager
def extra_process(system: System, module: str, log_name: str,
                  **env: str) -> Iterator[subprocess.Popen]:
    """``python -m <module>`` with the system's settings (``env`` on top), its output in
    ``logs/<log_name>.log`` of the system's run folder, stopped when the block ends."""
    with open(system.run_dir / "logs" / f"{log_name}.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **system.env, **env},
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s; nothing if it has ended."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


async def until_ready(client: Client, process: subprocess.Popen | None = None,
                      within: float = 60.0, interval: float = 0.3) -> None:
    """Until the gateway behind ``client`` answers /readyz with 200; ``process``, if given,
    must not end meanwhile."""
    deadline = time.monotonic() + within
    while True:
        try:
            if (await client.get("/readyz")).status == 200:
                return
        except aiohttp.ClientError:
            pass
        assert process is None or process.poll() is None, f"{process.args} ended"
        assert time.monotonic() < deadline, f"{client.base} not ready within {within} s"
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def another_gateway(system: System, api: Client, log_name: str = "gateway-second",
                          **env: str) -> AsyncIterator[Client]:
    """One more gateway process of the system (``env`` on top of its settings) on a free port,
    ready; a client of it shares ``api``'s HTTP session."""
    port = free_port()
    with extra_process(system, "gateway", log_name, TTMS_GATEWAY_PORT=str(port),
                       TTMS_GATEWAY_PROCESSES="1", **env) as process:
        client = Client(api.session, f"http://127.0.0.1:{port}")
        await until_ready(client, process)
        yield client


async def consumers(system: System, queue: str) -> int:
    """How many consumers the broker counts on ``queue``."""
    connection = await aio_pika.connect(system.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count


@contextlib.asynccontextmanager
async def one_more_process(system: System, service: str,
                           within: float = 30.0) -> AsyncIterator[subprocess.Popen]:
    """One more process of ``service`` (``play_svc``, …), consuming from its command queue
    beside the session's one before the block starts."""
    queue = system.settings.names.rpc_queue(service.removesuffix("_svc"))
    before = await consumers(system, queue)
    with extra_process(system, service, f"{service}-2") as process:
        async def consuming():
            assert await consumers(system, queue) > before

        await eventually(consuming, timeout=within)
        yield process


async def ticket_pids(rpc: RpcClient, tries: int = 40) -> set[int]:
    """The pids of the ticket_svc processes that answer pings, once more than one did (or
    after ``tries`` rounds)."""
    pids = set()
    for _ in range(tries):
        answers = await asyncio.gather(*(rpc.ping("ticket") for _ in range(8)),
                                       return_exceptions=True)
        pids |= {a["pid"] for a in answers if isinstance(a, dict)}
        if len(pids) > 1:
            break
        await asyncio.sleep(0.25)
    return pids


@contextlib.asynccontextmanager
async def second_ticket_svc(system: System, rpc: RpcClient) -> AsyncIterator[None]:
    """A second ticket_svc process, answering beside the session's one."""
    with extra_process(system, "ticket_svc", "ticket_svc-2"):
        assert len(await ticket_pids(rpc)) == 2, "the second ticket_svc never answered"
        yield
