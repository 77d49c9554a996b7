"""Who may do what, generated from the contract, and what no one can get in with.

The permission matrix is read from the repository's ``docs/API.md`` (``tests/api_doc.py``) at
collection time: every row of every route table with a "who" column × every role (anonymous,
customer, clerk, manager, admin) × owner / non-owner where the row says "owner" or "self" (or
lets clerks pass ``?user_id=``).
Expected: anonymous on a route that is not for "anyone" → 401; a role too low → 403; a
customer on another customer's resource → ``NOT_OWNER`` (403, as ticket_svc, order_svc and the
gateway answer); allowed → the exact success code where ``BUILDERS`` knows how to build a valid
request, else anything but 401/403/5xx. Routes the gateway does not declare yet are xfail
("not built yet") and start counting by themselves once they land.

Then tokens (forgeries that must all be 401), login rate limits per username and per client
address (on a second gateway started here with a low per-address limit), passwords never
leaking into logs, events or answers, and services refusing commands with no caller.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aio_pika
import jwt
import orjson
import pytest

from gateway.routes import ROUTES
from messages import errors
from messages.broker import Broker
from messages.rpc import RpcClient
from tests import catalogue
from tests.api_doc import API_MD, RANK, WHO, Contract, read_contract
from tests.conftest import TEST_ENV, Client
from tests.processes import another_gateway

ROLES = (None, "customer", "clerk", "manager", "admin")
NOT_BUILT = "not built yet"
SECRET = TEST_ENV["TTMS_JWT_SECRET"]


CONTRACT = read_contract(API_MD.read_text()) if API_MD.exists() else []
DECLARED = {f"{r.method} {r.path}" for r in ROUTES}


def not_built(contract: Contract) -> list:
    if contract.key in DECLARED:
        return []
    return [pytest.mark.xfail(reason=NOT_BUILT, strict=False)]


def test_api_md_was_found_and_read():
    assert API_MD.exists(), f"the contract is expected at {API_MD}"
    keys = {c.key for c in CONTRACT}
    assert len(CONTRACT) >= 30 and "POST /auth/login" in keys and "GET /orders/{id}" in keys
    assert {c.who.lower() for c in CONTRACT} <= WHO, \
        "a new kind of 'who' in API.md: teach Contract.allows about it"


@pytest.mark.parametrize("contract", [
    pytest.param(c, id=c.key, marks=not_built(c)) for c in CONTRACT])
async def test_every_contract_route_is_in_the_openapi_document(api, contract):
    document = await api.get("/openapi.json")
    assert document.status == 200
    operations = document.body["paths"].get("/api/v1" + contract.path, {})
    assert contract.method.lower() in operations, f"{contract.key} is not in openapi.json"


# -- the world the matrix acts on ---------------------------------------------------------------

@dataclass
class Request:
    path: str
    status: int                     # the success code of a valid request
    json: Any = None
    params: dict | None = None


@dataclass
class World:
    """Shared resources and factories; ``owner`` of a case is who owns its resource."""

    api: Client
    admin: Client
    manager: Client
    new_user: Callable[..., Awaitable[Client]]
    other: Client                    # a customer who owns what non-owners reach for
    show: dict = field(default_factory=dict)
    play: dict = field(default_factory=dict)
    studio: dict = field(default_factory=dict)
    door_show: dict = field(default_factory=dict)  # made by the first check-in
    created_users: list[int] = field(default_factory=list)  # deleted when the module ends
    seats: Any = field(default_factory=lambda: itertools.count())
    names: Any = field(default_factory=lambda: itertools.count())

    def unique(self, prefix: str) -> str:
        return f"{prefix}_{os.getpid()}_{next(self.names)}_{uuid.uuid4().hex[:6]}"

    async def make_studio(self, rows: int = 20, cols: int = 20) -> dict:
        return await catalogue.make_studio(self.manager, rows, cols)

    async def make_play(self) -> dict:
        today = date.today()
        return await catalogue.make_play(self.manager, duration_minutes=90,
                                         starts_on=str(today - timedelta(days=1)),
                                         ends_on=str(today + timedelta(days=30)))

    async def make_show(self, play: dict | None = None, studio: dict | None = None,
                        starts_at: datetime | None = None) -> dict:
        return await catalogue.make_schedule(
            self.manager, play or await self.make_play(), studio or await self.make_studio(),
            starts_at or catalogue.at(days=2))

    async def make_user(self) -> dict:
        """A customer registered for the request (deleted when the module ends)."""
        answer = await self.api.post("/auth/register", {"username": self.unique("target"),
                                                        "password": "password123"})
        assert answer.status == 201, answer.body
        self.created_users.append(answer.body["id"])
        return answer.body

    def next_seat(self) -> dict:
        n = next(self.seats)
        return {"row": n // 20 + 1, "col": n % 20 + 1}

    async def hold(self, client: Client, show: dict | None = None) -> dict:
        answer = await client.post("/reservations", {"schedule_id": (show or self.show)["id"],
                                                     "seats": [self.next_seat()]})
        assert answer.status == 201, answer.body
        return answer.body

    async def paid(self, client: Client, show: dict | None = None) -> dict:
        reservation = await self.hold(client, show)
        answer = await client.post(f"/reservations/{reservation['id']}/pay", {})
        assert answer.status == 200, answer.body
        return answer.body

    async def order(self, client: Client) -> int:
        reservation = await self.paid(client)
        await until_ok(self.admin, f"/orders/{reservation['id']}")
        return reservation["id"]

    async def door_ticket(self, owner: Client) -> dict:
        """A ticket ``owner`` bought for a show 30 minutes away (inside the door window), with
        its check-in code."""
        if not self.door_show:
            self.door_show = await self.make_show(starts_at=catalogue.at(minutes=31))
        paid = await self.paid(owner, self.door_show)
        ticket = await self.admin.get(f"/tickets/{paid['tickets'][0]['id']}")
        assert ticket.status == 200, ticket.body
        return ticket.body

    async def stand_in(self, name: str, owner: Client) -> int | str:
        """What ``{name}`` stands for in a path built from ID_IS and QUERY."""
        match name:
            case "studio" | "play" | "show":
                return getattr(self, name)["id"]
            case "owner":
                return owner.user["id"]
            case "new_studio":
                return (await self.make_studio())["id"]
            case "new_play":
                return (await self.make_play())["id"]
            case "new_show":
                return (await self.make_show(self.play))["id"]
            case "new_user":
                return (await self.make_user())["id"]
            case "new_username":
                return (await self.make_user())["username"]
            case "hold":
                return (await self.hold(owner))["id"]
            case "ticket":
                return (await self.paid(owner))["tickets"][0]["id"]
            case "order":
                return await self.order(owner)
        raise KeyError(name)


async def until_ok(client: Client, path: str, within: float = 10.0) -> None:
    """Wait for an eventually consistent read (order_svc is built from events)."""
    deadline = time.monotonic() + within
    while (answer := await client.get(path)).status != 200:
        assert time.monotonic() < deadline, f"{path} never answered 200: {answer.body}"
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def world(api, admin, manager, new_user) -> World:
    world = World(api, admin, manager, new_user, await new_user("customer"))
    world.studio = await world.make_studio()
    world.play = await world.make_play()
    world.show = await world.make_show(world.play)
    await until_ok(admin, f"/box-office/plays/{world.play['id']}")
    yield world
    # Leave the user list as it was found (other tests page through it).
    for user_id in [*world.created_users, world.other.user["id"]]:
        await admin.delete(f"/users/{user_id}")


@pytest.fixture(scope="module")
async def callers(new_user, admin) -> dict[str, Client]:
    callers = {role: await new_user(role) for role in RANK}
    yield callers
    for caller in callers.values():
        await admin.delete(f"/users/{caller.user['id']}")


# How to build a valid request for each route: (world, caller, owner) → Request. ``owner`` is
# the client whose resource the request acts on (the caller itself in an "owner" case).
Builder = Callable[[World, Client, Client], Awaitable[Request]]
BUILDERS: dict[str, Builder] = {}
FRESH_CALLER = {"POST /users/me/password"}  # the call revokes the caller's own tokens


def builds(key: str):
    def register(fn: Builder) -> Builder:
        BUILDERS[key] = fn
        return fn
    return register


# Most routes' valid request is the route's own path with a stand-in for ``{id}`` (ID_IS: the
# world's studio, play or show, the owner, or something made for the request; see
# ``World.stand_in``), perhaps a query (QUERY), and the success code and body of SENT (else
# 200 and no body). The routes that need more have a builder function below.
ID_IS: dict[str | None, tuple[str, ...]] = {
    None: ("GET /users/me", "PATCH /users/me", "GET /users", "POST /users", "GET /customers",
           "POST /auth/register", "POST /auth/password-reset", "POST /auth/password-reset/confirm",
           "POST /users/me/email/verify", "GET /studios", "POST /studios", "GET /plays",
           "POST /plays", "GET /schedules", "POST /reservations", "GET /tickets", "GET /orders",
           "GET /box-office", "GET /waitlist", "GET /audit", "GET /ping"),
    "owner": ("GET /users/{id}",),
    "new_user": ("PATCH /users/{id}", "DELETE /users/{id}"),
    "studio": ("GET /studios/{id}", "GET /studios/{id}/seats"),
    "new_studio": ("PATCH /studios/{id}", "DELETE /studios/{id}", "PATCH /studios/{id}/seats"),
    "play": ("GET /plays/{id}", "GET /box-office/plays/{id}"),
    "new_play": ("PATCH /plays/{id}", "DELETE /plays/{id}"),
    # Without Accept: text/event-stream the seat stream answers its snapshot alone (it ends).
    "show": ("GET /schedules/{id}", "GET /schedules/{id}/seats", "GET /schedules/{id}/seats/stream",
             "PATCH /schedules/{id}/seat-rules", "GET /schedules/{id}/checkin-list"),
    "new_show": ("PATCH /schedules/{id}", "DELETE /schedules/{id}"),
    "hold": ("GET /reservations/{id}", "POST /reservations/{id}/pay", "DELETE /reservations/{id}"),
    "ticket": ("GET /tickets/{id}", "GET /tickets/{id}/qr.svg", "POST /tickets/{id}/refund",
               "POST /tickets/{id}/reissue"),
    "order": ("GET /orders/{id}",),
}
QUERY = {"GET /customers": "?username={new_username}", "GET /tickets": "?user_id={owner}",
         "GET /orders": "?user_id={owner}", "GET /waitlist": "?user_id={owner}",
         "GET /audit": "?action=refund"}
SENT: dict[str, tuple[int, Any]] = {  # a callable body is made from the world
    "POST /auth/register": (201, lambda w: {"username": w.unique("reg"),
                                            "password": "password123"}),
    "PATCH /users/me": (200, {"email": "perm@example.com"}),
    "POST /users": (201, lambda w: {"username": w.unique("staff"), "password": "password123",
                                    "role": "clerk"}),
    "PATCH /users/{id}": (200, {"email": "t@example.com"}),
    "DELETE /users/{id}": (204, None),
    "POST /studios": (201, lambda w: {"name": w.unique("Studio"), "rows": 3, "cols": 3}),
    "PATCH /studios/{id}": (200, {"description": "x"}),
    "PATCH /studios/{id}/seats": (200, {"seats": [{"row": 1, "col": 1, "kind": "aisle"}]}),
    "DELETE /studios/{id}": (204, None),
    "POST /plays": (201, lambda w: {
        "name": w.unique("Play"), "kind": "opera", "rating": "adult", "duration_minutes": 60,
        "starts_on": str(date.today()), "ends_on": str(date.today() + timedelta(days=5)),
        "price": 100}),
    "PATCH /plays/{id}": (200, {"price": 5000}),
    "DELETE /plays/{id}": (204, None),
    "PATCH /schedules/{id}": (200, {"price": 5100}),
    "PATCH /schedules/{id}/seat-rules": (200, {"no_single_gaps": False}),
    "DELETE /schedules/{id}": (204, None),
    "POST /reservations": (201, lambda w: {"schedule_id": w.show["id"],
                                           "seats": [w.next_seat()]}),
    "POST /reservations/{id}/pay": (200, {}),
    "DELETE /reservations/{id}": (204, None),
    # The mail routes' success needs what only the mail carries (a code, a token: see
    # tests/test_mail.py); here a well-formed request that was let in answers 422 for it.
    "POST /users/me/email/verify": (422, {"code": "000000"}),
    "POST /auth/password-reset": (202, lambda w: {"email": f"{w.unique('reset')}@example.com"}),
    "POST /auth/password-reset/confirm": (422, {"token": "not-a-token-0123456789",
                                                "new_password": "password123"}),
}


def plain(key: str, id_is: str | None) -> Builder:
    path = key.split(" ", 1)[1].replace("{id}", f"{{{id_is}}}") + QUERY.get(key, "")
    status, body = SENT.get(key, (200, None))

    async def build(w: World, caller: Client, owner: Client) -> Request:
        values = {name: await w.stand_in(name, owner) for name in re.findall(r"{(\w+)}", path)}
        return Request(path.format(**values), status, body(w) if callable(body) else body)
    return build


BUILDERS.update({key: plain(key, id_is) for id_is, keys in ID_IS.items() for key in keys})


@builds("POST /auth/login")
async def _(w, caller, owner):
    username = (await w.make_user())["username"]
    return Request("/auth/login", 200, {"username": username, "password": "password123"})


@builds("POST /users/me/password")
async def _(w, caller, owner):
    return Request("/users/me/password", 204,
                   {"old_password": getattr(caller, "password", "password123"),
                    "new_password": "another-password"})


@builds("POST /schedules")
async def _(w, caller, owner):
    studio = await w.make_studio()
    return Request("/schedules", 201, {"play_id": w.play["id"], "studio_id": studio["id"],
                                       "starts_at": catalogue.iso(catalogue.at(days=3))})


@builds("POST /checkins")
async def _(w, caller, owner):
    return Request("/checkins", 200, {"code": (await w.door_ticket(owner))["code"]})


@builds("POST /checkins/batch")
async def _(w, caller, owner):
    code = (await w.door_ticket(owner))["code"]
    return Request("/checkins/batch", 200, {"scans": [
        {"code": code, "scanned_at": datetime.now(UTC).isoformat()}]})


@builds("POST /schedules/{id}/waitlist")
async def _(w, caller, owner):
    show = await w.make_show(w.play, await w.make_studio(1, 1), catalogue.at(days=3))
    held = await w.other.post("/reservations", {"schedule_id": show["id"],
                                                "seats": [{"row": 1, "col": 1}]})
    assert held.status == 201, held.body  # sold out: the line is open
    return Request(f"/schedules/{show['id']}/waitlist", 201, {"quantity": 1})


@builds("DELETE /waitlist/{id}")
async def _(w, caller, owner):
    show = await w.make_show(w.play, await w.make_studio(1, 1), catalogue.at(days=3))
    held = await w.other.post("/reservations", {"schedule_id": show["id"],
                                                "seats": [{"row": 1, "col": 1}]})
    assert held.status == 201, held.body
    joined = await owner.post(f"/schedules/{show['id']}/waitlist", {"quantity": 1})
    assert joined.status == 201, joined.body
    return Request(f"/waitlist/{joined.body['id']}", 200)


async def generic_request(w: World, caller: Client, owner: Client, contract: Contract) -> Request:
    """A route nobody taught the matrix yet: an id that may not exist and an empty body; only
    "neither 401 nor 403" can be asked of the allowed then."""
    path = contract.path.replace("{id}", str(owner.user["id"]) if owner.user else "1")
    body = {} if contract.method in ("POST", "PATCH", "PUT") else None
    return Request(path, 0, body)


# -- the matrix ------------------------------------------------------------------------------

# What a customer gets for another customer's resource; API.md allows 403 or 404, each route
# pins one. Every service answers 403 ``forbidden`` today (a missing resource is 404).
NOT_OWNER: dict[str, int] = {}


@dataclass(frozen=True)
class Case:
    contract: Contract
    role: str | None
    owner: bool | None   # None: ownership does not matter for this route or role

    @property
    def expected(self) -> int | None:
        """401, 403, the non-owner code, or None for "allowed"."""
        if self.contract.allows(self.role, self.owner):
            return None
        if self.role is None:
            return 401
        if self.owner is False and self.contract.allows(self.role, True):
            return NOT_OWNER.get(self.contract.key, 403)
        return 403

    @property
    def id(self) -> str:
        who = self.role or "anonymous"
        if self.owner is not None:
            who += "-owner" if self.owner else "-not-owner"
        return f"{self.contract.key} as {who}"


def cases() -> list:
    params = []
    for contract in CONTRACT:
        for role in ROLES:
            owners = (True, False) if role is not None and contract.by_ownership else (None,)
            for owner in owners:
                case = Case(contract, role, owner)
                params.append(pytest.param(case, id=case.id, marks=not_built(contract)))
    return params


@pytest.mark.parametrize("case", cases())
async def test_permission_matrix(world, callers, new_user, case: Case):
    contract, role = case.contract, case.role
    if role is None:
        caller = world.api.as_(None)
    elif contract.key in FRESH_CALLER:
        caller = await new_user(role)
    else:
        caller = callers[role]
    owner = caller if case.owner else world.other
    build = BUILDERS.get(contract.key)
    request = await build(world, caller, owner) if build else \
        await generic_request(world, caller, owner, contract)
    answer = await asyncio.wait_for(
        caller.request(contract.method, request.path, request.json, params=request.params), 15)
    if answer.status == 201 and contract.path in ("/auth/register", "/users"):
        world.created_users.append(answer.body["id"])
    if role is not None and contract.key in FRESH_CALLER:
        world.created_users.append(caller.user["id"])
    assert answer.status < 500, answer.body
    expected = case.expected
    if expected is None:
        assert answer.status not in (401, 403), answer.body
        if request.status:
            assert answer.status == request.status, answer.body
    else:
        assert answer.status == expected, answer.body
        assert answer.code == {401: "unauthorized", 403: "forbidden",
                               404: "not_found"}[expected]
        assert answer.headers["Content-Type"].startswith("application/problem+json")


def test_every_declared_route_of_the_contract_has_a_builder():
    """A route in API.md without a builder is still checked for 401/403, but its success
    code is not pinned: teach BUILDERS about it."""
    missing = sorted(c.key for c in CONTRACT if c.key not in BUILDERS and c.key in DECLARED)
    assert not missing, missing


# -- tokens ----------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([_b64(orjson.dumps(header)), _b64(orjson.dumps(claims)), _b64(signature)])


def _claims(user_id: int, **changes) -> dict:
    now = int(time.time())
    claims = {"sub": str(user_id), "role": "admin", "tv": 0, "iat": now, "exp": now + 600}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _hs256(claims: dict, key: bytes) -> str:
    signing_input = ".".join([_b64(orjson.dumps({"alg": "HS256", "typ": "JWT"})),
                              _b64(orjson.dumps(claims))])
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _resigned_with_header(header: dict, claims: dict) -> str:
    """A correctly HS256-signed token whose header then claims something else."""
    good = jwt.encode(claims, SECRET, algorithm="HS256")
    _, body, signature = good.split(".")
    return ".".join([_b64(orjson.dumps(header)), body, signature])


FORGERIES: dict[str, Callable[[int], str]] = {
    "alg-none-empty-signature": lambda uid: _raw_token({"alg": "none", "typ": "JWT"},
                                                       _claims(uid)),
    "alg-None-capitalised": lambda uid: _raw_token({"alg": "None", "typ": "JWT"}, _claims(uid)),
    "alg-NONE-with-signature": lambda uid: _raw_token({"alg": "NONE"}, _claims(uid), b"x" * 32),
    "alg-none-header-on-a-valid-signature": lambda uid: _resigned_with_header(
        {"alg": "none", "typ": "JWT"}, _claims(uid)),
    "hs256-signature-stripped": lambda uid: jwt.encode(
        _claims(uid), SECRET, algorithm="HS256").rsplit(".", 1)[0] + ".",
    "hs512-with-the-right-key": lambda uid: jwt.encode(_claims(uid), SECRET, algorithm="HS512"),
    "hs384-with-the-right-key": lambda uid: jwt.encode(_claims(uid), SECRET, algorithm="HS384"),
    "another-key": lambda uid: jwt.encode(_claims(uid), SECRET + "x", algorithm="HS256"),
    "key-as-empty-string": lambda uid: _hs256(_claims(uid), b""),
    "non-integer-sub": lambda uid: jwt.encode(_claims(uid, sub="admin"), SECRET,
                                              algorithm="HS256"),
    "fractional-sub": lambda uid: jwt.encode(_claims(uid, sub="1.5"), SECRET, algorithm="HS256"),
    "huge-sub": lambda uid: jwt.encode(_claims(uid, sub=str(2**80)), SECRET, algorithm="HS256"),
    "no-sub": lambda uid: jwt.encode(_claims(uid, sub=None), SECRET, algorithm="HS256"),
    "no-exp": lambda uid: jwt.encode(_claims(uid, exp=None), SECRET, algorithm="HS256"),
    "no-iat": lambda uid: jwt.encode(_claims(uid, iat=None), SECRET, algorithm="HS256"),
    "exp-as-string": lambda uid: _resigned_with_header(
        {"alg": "HS256", "typ": "JWT"}, _claims(uid, exp="never")),
    "expired-long-ago": lambda uid: jwt.encode(_claims(uid, exp=1, iat=0), SECRET,
                                               algorithm="HS256"),
    "unknown-role": lambda uid: jwt.encode(_claims(uid, role="root"), SECRET, algorithm="HS256"),
    "not-base64": lambda uid: "e30.%%%.%%%",
    "two-parts": lambda uid: "eyJhbGciOiJIUzI1NiJ9.e30",
    "json-array-claims": lambda uid: _raw_token({"alg": "HS256"}, [1, 2]),  # type: ignore[arg-type]
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("name", sorted(FORGERIES))
async def test_forged_or_malformed_tokens_are_401(api, customer, name):
    token = FORGERIES[name](customer.user["id"])
    for path in ("/users/me", "/users"):
        answer = await api.as_(token).get(path)
        assert answer.status == 401, (name, path, answer.body)
        assert answer.code == "unauthorized"


async def test_a_correctly_signed_token_with_a_stale_token_version_is_401(api, customer):
    """Only the key holder can mint one; still, a token version below the account's
    current one (raised by any access change) must not work."""
    await customer.post("/users/me/password", {"old_password": customer.password,
                                               "new_password": "password-two"})
    stale = jwt.encode(_claims(customer.user["id"], role="customer", tv=0), SECRET,
                       algorithm="HS256")
    deadline = time.monotonic() + 2
    while (answer := await api.as_(stale).get("/users/me")).status != 401:
        assert time.monotonic() < deadline, answer.body
        await asyncio.sleep(0.05)


async def test_the_token_of_a_disabled_or_deleted_user_is_401_on_every_kind_of_route(
        api, admin, new_user, world):
    """test_users covers /users/me; here the revoked token is tried on a service route too."""
    for action in ("disable", "delete"):
        user = await new_user()
        reservation = await world.hold(user)
        if action == "disable":
            assert (await admin.patch(f"/users/{user.user['id']}",
                                      {"disabled": True})).status == 200
        else:
            assert (await admin.delete(f"/users/{user.user['id']}")).status == 204
        deadline = time.monotonic() + 2
        while (answer := await user.get(f"/reservations/{reservation['id']}")).status != 401:
            assert time.monotonic() < deadline, (action, answer.body)
            await asyncio.sleep(0.05)
        assert (await user.get("/tickets")).status == 401
        assert (await user.post("/reservations", {"schedule_id": world.show["id"],
                                                  "seats": [{"row": 20, "col": 20}]})).status == 401


# -- login rate limits ---------------------------------------------------------------------------

async def test_login_limit_per_username_also_counts_case_variants(api, new_user):
    user = await new_user()
    name = user.user["username"]
    statuses = []
    for i in range(14):
        variant = name.upper() if i % 2 else name
        statuses.append((await api.post("/auth/login", {"username": variant,
                                                        "password": "wrong-password"})).status)
    assert 429 in statuses, statuses
    assert set(statuses) <= {401, 429}


@pytest.fixture
async def strict_gateway(system, api):
    """A second gateway of the same system, with 5 sign-ins per address per minute."""
    async with another_gateway(system, api, "gateway_strict",
                               TTMS_LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE="5",
                               TTMS_LOGIN_ATTEMPTS_PER_MINUTE="1000") as gateway:
        yield gateway


async def test_login_limit_per_client_address(strict_gateway, new_user):
    """Five sign-ins a minute from one address, whatever the usernames; a right password does
    not get through either once the address is over its limit."""
    users = [await new_user() for _ in range(2)]
    statuses = []
    for i in range(8):
        statuses.append((await strict_gateway.post("/auth/login", {
            "username": f"nobody_{i}_{uuid.uuid4().hex[:6]}", "password": "whatever1"})).status)
    assert statuses[:5] == [401] * 5, statuses
    assert statuses[5:] == [429] * 3, statuses
    limited = await strict_gateway.post("/auth/login", {"username": users[0].user["username"],
                                                        "password": users[0].password})
    assert limited.status == 429 and limited.code == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # Other routes from the same address are not affected.
    assert (await strict_gateway.get("/plays")).status == 200


# -- passwords never leak ------------------------------------------------------------------------

async def _event_log(system, within: float = 3.0) -> list[bytes]:
    """Every message of the event log stream from its first offset, read until quiet."""
    bodies: list[bytes] = []
    connection = await aio_pika.connect(system.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(f"{system.settings.namespace}.events.log", ensure=False)
        last = time.monotonic()
        async with queue.iterator(arguments={"x-stream-offset": "first"}) as messages:
            while True:
                try:
                    message = await asyncio.wait_for(messages.__anext__(), 1.0)
                except TimeoutError:
                    if time.monotonic() - last > 1.0 or time.monotonic() - last > within:
                        break
                    continue
                bodies.append(message.body)
                await message.ack()
                last = time.monotonic()
    return bodies


async def test_passwords_never_appear_in_logs_events_or_answers(api, admin, system):
    canary = f"Canary-{uuid.uuid4().hex}"
    first, second, wrong, staff = (f"{canary}-first", f"{canary}-second", f"{canary}-wrong",
                                   f"{canary}-staff")
    username = f"canary_{uuid.uuid4().hex[:8]}"
    answers = [
        await api.post("/auth/register", {"username": username, "password": first,
                                          "email": "canary@example.com"}),
        await api.post("/auth/login", {"username": username, "password": wrong}),
        await api.post("/auth/login", {"username": username, "password": first}),
        # Refused bodies echo nothing of the password either.
        await api.post("/auth/register", {"username": "x", "password": first}),
        await api.post("/auth/register", {"username": username + "2", "password": first,
                                          "extra": first}),
        await api.post("/auth/login", {"username": username, "password": first * 3}),
    ]
    client = api.as_(answers[2].body["access_token"])
    answers.append(await client.post("/users/me/password", {"old_password": wrong,
                                                            "new_password": second}))
    answers.append(await client.post("/users/me/password", {"old_password": first,
                                                            "new_password": second}))
    answers.append(await client.post("/users/me/password", {"old_password": first,
                                                            "new_password": "short"}))
    answers.append(await admin.post("/users", {"username": f"{username}_s", "password": staff,
                                               "role": "clerk"}))
    answers.append(await admin.post("/users", {"username": f"{username}_s", "password": staff,
                                               "role": "clerk"}))
    statuses = [a.status for a in answers]
    assert statuses[:3] == [201, 401, 200] and statuses[6:8] == [401, 204], statuses
    for answer in answers:
        assert canary not in orjson.dumps(answer.body).decode(), answer.body
        assert all(canary not in v for v in answer.headers.values())

    await asyncio.sleep(1.0)  # let the outbox relay and the log writers catch up
    events = await _event_log(system)
    assert any(username.encode() in body for body in events), "the event log was not read"
    assert not [b for b in events if canary.encode() in b]
    logs = sorted((system.run_dir / "logs").glob("*.log"))
    assert logs
    for path in logs:
        assert canary not in path.read_text(errors="replace"), f"a password leaked into {path}"


# -- services refuse commands that carry no caller --------------------------------------------

async def test_services_refuse_commands_without_a_caller(system):
    broker = Broker(system.settings.amqp_url, f"{system.settings.namespace}-perm-test")
    rpc = RpcClient(broker, system.settings.names, timeout=5)
    await broker.start(wait=10)
    try:
        # Every command behind a route (ping is the liveness probe: no data, no caller).
        commands = sorted({r.command.name for r in ROUTES} - {"user.ping"})
        assert len(commands) >= 30
        for name in commands:
            with pytest.raises(errors.Unauthorized):
                await rpc.call(name, {"id": 1}, None)
                pytest.fail(f"{name} ran without a caller")
    finally:
        await broker.stop()


async def test_only_staff_may_sell_on_a_customers_account(world, callers, new_user):
    """``customer_id`` on POST /reservations is the box office's: a customer naming another
    account is 403; a clerk's sale belongs to the customer, who then owns it."""
    buyer = await new_user()
    body = {"schedule_id": world.show["id"], "customer_id": buyer.user["id"],
            "seats": [world.next_seat()]}
    refused = await callers["customer"].post("/reservations", body)
    assert refused.status == 403 and refused.code == "forbidden", refused.body
    sold = await callers["clerk"].post("/reservations", body)
    assert sold.status == 201 and sold.body["user_id"] == buyer.user["id"], sold.body
    assert (await buyer.get(f"/reservations/{sold.body['id']}")).status == 200
    assert (await callers["customer"].get(f"/reservations/{sold.body['id']}")).status == 403


PUBLIC = [r for r in ROUTES if r.who.value == "anyone"]


@pytest.mark.parametrize("route", PUBLIC, ids=[f"{r.method} {r.path}" for r in PUBLIC])
async def test_a_bad_token_is_401_even_where_none_is_needed(api, route):
    """A token, if sent, must be valid: also on public routes, and on answers the gateway
    shares between callers (the seat map), whose cache comes after the token check."""
    forged = jwt.encode(_claims(1), SECRET + "x", algorithm="HS256")
    path = route.path.replace("{id}", "1")
    for _ in range(2):  # the second one could be served from a shared answer
        answer = await api.request(route.method, path, {} if route.body else None)
        assert answer.status != 401
        answer = await api.as_(forged).request(route.method, path,
                                               {} if route.body else None)
        assert answer.status == 401 and answer.code == "unauthorized", answer.body
