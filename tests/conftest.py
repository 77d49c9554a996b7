"""The one place that starts TTMS for the tests: every process, once per test session, in the
test namespace (``TTMS_TEST_NAMESPACE``, default ``ttms_test``), against the real RabbitMQ and
MariaDB. Before starting, the namespace's databases are dropped and its queues deleted, so each
session begins empty and never touches a running deployment.

Fixtures: ``system`` (the running system: base URL, env, run dir, restart helpers), ``api``
(an HTTP client bound to the gateway), ``admin``/``manager``/``clerk``/``customer`` (signed-in
clients of each role), ``new_user`` (a factory for more).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

import launcher
from messages.broker import Broker, delete_namespace
from messages.db import Database
from messages.rpc import RpcClient
from messages.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = os.environ.get("TTMS_TEST_NAMESPACE", "ttms_test")
PORT = int(os.environ.get("TTMS_TEST_PORT", 18000 + zlib.crc32(NAMESPACE.encode()) % 1000))
ADMIN_PASSWORD = "test-admin-password"

TEST_ENV = {
    "TTMS_NAMESPACE": NAMESPACE,
    "TTMS_GATEWAY_PORT": str(PORT),
    "TTMS_GATEWAY_HOST": "127.0.0.1",
    "TTMS_JWT_SECRET": "test-jwt-secret-0123456789abcdef0123456789",
    "TTMS_ADMIN_USERNAME": "admin",
    "TTMS_ADMIN_PASSWORD": ADMIN_PASSWORD,
    # Cheap hashing: the tests sign in hundreds of users; production keeps the defaults.
    "TTMS_ARGON2_TIME_COST": "1",
    "TTMS_ARGON2_MEMORY_KIB": "1024",
    "TTMS_RATE_LIMIT_PER_SECOND": "100000",
    "TTMS_RATE_LIMIT_BURST": "100000",
    "TTMS_LOGIN_ATTEMPTS_PER_MINUTE": "10",
    "TTMS_LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE": "100000",
    "TTMS_HOLD_SECONDS": "6",
    # Sales close a minute before a show: the cutoff and refund-window tests need shows soon.
    "TTMS_SALES_CUTOFF_MINUTES": "1",
    "TTMS_SWEEP_INTERVAL_SECONDS": "1",
    "TTMS_OUTBOX_POLL_SECONDS": "0.5",
    # The SMTP sink the mail tests start (tests/test_mail.py); mail waits while it is down.
    "TTMS_SMTP_HOST": "127.0.0.1",  # set: the launcher starts no sink of its own
    "TTMS_SMTP_PORT": str(PORT + 1000),
    "TTMS_MAIL_RETRY_MAX_SECONDS": "2",
    "TTMS_MAIL_POLL_SECONDS": "0.3",
    "TTMS_LOG_LEVEL": "INFO",
}


def _reset_namespace(settings: Settings) -> None:
    """Drop the namespace's databases and delete its queues and exchanges."""
    subprocess.run([sys.executable, "-m", "migrations", "drop"], cwd=ROOT, check=True,
                   env={**os.environ, **TEST_ENV}, capture_output=True)
    asyncio.run(delete_namespace(settings.amqp_url, settings.names))


@dataclass
class System:
    url: str
    env: dict[str, str]
    run_dir: Path
    settings: Settings

    def kill(self, name: str) -> None:
        launcher.kill_one(self.run_dir, name)

    def start(self, name: str) -> None:
        launcher.start_one(self.run_dir, name, self.env)

    def log(self, name: str) -> str:
        return (self.run_dir / "logs" / f"{name}.log").read_text(errors="replace")


def test_settings() -> Settings:
    """The settings the test system runs with."""
    return Settings(**{k.removeprefix("TTMS_").lower(): v for k, v in TEST_ENV.items()})


@asynccontextmanager
async def service_database(service: str) -> AsyncIterator[Database]:
    """One service's database of the test system, for a test to read or write directly."""
    db = Database(test_settings(), service)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def system(tmp_path_factory) -> System:
    settings = test_settings()
    run_dir = ROOT / "run" / NAMESPACE
    launcher.down(run_dir)
    _reset_namespace(settings)
    url = launcher.up(run_dir, TEST_ENV, timeout=120)
    yield System(url, TEST_ENV, run_dir, settings)
    launcher.down(run_dir)


@pytest.fixture
async def service_rpc(system: System):
    """An RPC client of the system's bus, to call a command as another service would (give
    it a caller with no user and no role)."""
    broker = Broker(system.settings.amqp_url, f"{system.settings.namespace}-test-rpc")
    rpc = RpcClient(broker, system.settings.names, timeout=5)
    await broker.start(wait=10)
    yield rpc
    await broker.stop()


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


class Client:
    """A small HTTP client for the gateway; ``token`` signs its requests."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None = None,
                 user: dict | None = None) -> None:
        self.session = session
        self.base = base
        self.token = token
        self.user = user

    def as_(self, token: str | None, user: dict | None = None) -> Client:
        return Client(self.session, self.base, token, user)

    async def request(self, method: str, path: str, json: Any = None, *,
                      headers: dict[str, str] | None = None, data: bytes | None = None,
                      params: dict | None = None) -> Answer:
        all_headers = dict(headers or {})
        if self.token and "Authorization" not in all_headers:
            all_headers["Authorization"] = f"Bearer {self.token}"
        if json is not None:
            data = orjson.dumps(json)
            all_headers.setdefault("Content-Type", "application/json")
        url = path if path.startswith("http") else self.base + (
            path if path.startswith("/healthz") or path.startswith("/readyz")
            or path.startswith("/metrics") or path.startswith("/docs") else "/api/v1" + path)
        async with self.session.request(method, url, data=data, headers=all_headers,
                                        params=params) as response:
            raw = await response.read()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw.decode(errors="replace")
            return Answer(response.status, body, dict(response.headers))

    async def get(self, path: str, **kw) -> Answer:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw) -> Answer:
        return await self.request("POST", path, json, **kw)

    async def patch(self, path: str, json: Any = None, **kw) -> Answer:
        return await self.request("PATCH", path, json, **kw)

    async def delete(self, path: str, **kw) -> Answer:
        return await self.request("DELETE", path, **kw)


_names = itertools.count()


@pytest.fixture(scope="session")
async def api(system: System):
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield Client(session, system.url)


async def patiently(send) -> Answer:
    """``send()`` again while it answers 503 with ``Retry-After``, as a client should: user_svc
    admits only a few password hashes at once, so a test making many users at once is a small
    sign-in storm (nothing was done for a refused call, so sending it again is safe)."""
    for _ in range(60):
        answer = await send()
        if answer.status != 503 or "Retry-After" not in answer.headers:
            return answer
        await asyncio.sleep(random.uniform(0.1, float(answer.headers["Retry-After"])))
    return answer


async def sign_in(api: Client, username: str, password: str) -> Client:
    answer = await patiently(lambda: api.post("/auth/login", {"username": username,
                                                             "password": password}))
    assert answer.status == 200, answer.body
    client = api.as_(answer.body["access_token"])
    me = await client.get("/users/me")
    assert me.status == 200, me.body
    client.user = me.body
    return client


@pytest.fixture(scope="session")
async def admin(api: Client) -> Client:
    return await sign_in(api, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="session")
async def new_user(api: Client, admin: Client):
    """``await new_user("clerk")`` → a signed-in client of a fresh account of that role."""

    async def make(role: str = "customer", password: str = "password123") -> Client:
        username = f"{role}_{os.getpid()}_{next(_names)}"
        if role == "customer":
            answer = await patiently(lambda: api.post("/auth/register", {
                "username": username, "password": password}))
        else:
            answer = await patiently(lambda: admin.post("/users", {
                "username": username, "password": password, "role": role}))
        assert answer.status == 201, answer.body
        client = await sign_in(api, username, password)
        client.password = password
        return client

    return make


@pytest.fixture(scope="session")
async def manager(new_user) -> Client:
    return await new_user("manager")


@pytest.fixture(scope="session")
async def clerk(new_user) -> Client:
    return await new_user("clerk")


@pytest.fixture
async def customer(new_user) -> Client:
    return await new_user("customer")
