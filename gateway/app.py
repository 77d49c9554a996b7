"""The aiohttp application: middlewares, the generic route handler, operations endpoints."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from gateway import metrics, openapi, seatmaps, webapp
from gateway.auth import ANONYMOUS, Authenticator, RateLimiter
from gateway.problems import from_http, problem
from gateway.routes import ROUTES, Route, Who
from messages import errors
from messages.broker import Broker
from messages.contracts.base import Role
from messages.events import Listener
from messages.rpc import RpcClient
from messages.service import settle_garbage_collector
from messages.settings import SERVICES, Settings

log = logging.getLogger("ttms.gateway")
API = "/api/v1"

settings_key = web.AppKey("settings", Settings)
rpc_key = web.AppKey("rpc", RpcClient)
broker_key = web.AppKey("broker", Broker)
auth_key = web.AppKey("auth", Authenticator)
limits_key = web.AppKey("limits", dict)
seatmaps_key = web.AppKey("seatmaps", seatmaps.SeatMaps)
# Callers whose requests carry their address to the services (the audit log, issue 20.6).
_STAFF = frozenset({Role.clerk.value, Role.manager.value, Role.admin.value})


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


# -- the edge: what every request goes through ---------------------------------------------

def edge_middleware(settings: Settings, limiter: RateLimiter):
    """One middleware (each extra one costs a coroutine per request): per-client rate limit,
    errors as problem+json, CORS on every answer (problems too), metrics."""
    allowed = {o.strip() for o in settings.cors_origins.split(",") if o.strip()}
    any_origin = "*" in allowed
    recorders: dict[tuple[Any, Any, int], tuple[list[int], list[float]]] = {}
    record = metrics.Requests.record

    @web.middleware
    async def edge(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        origin = request.headers.get("Origin")
        cors = origin is not None and (any_origin or origin in allowed)
        if cors and request.method == "OPTIONS" \
                and "Access-Control-Request-Method" in request.headers:
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": "*" if any_origin else origin,
                "Vary": "Origin",
                "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", "Authorization, Content-Type"),
                "Access-Control-Max-Age": "600"})
        try:
            wait = limiter.take(request.remote or "?")
            if wait is not None:
                raise errors.RateLimited("too many requests from this client", retry_after=wait)
            response = await handler(request)
        except errors.ServiceError as exc:
            response = problem(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem(from_http(exc))
            if "Allow" in exc.headers:  # 405: the methods the path has (RFC 9110)
                response.headers["Allow"] = exc.headers["Allow"]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = problem(errors.InternalError("an unexpected error occurred"))
        if cors:
            response.headers["Access-Control-Allow-Origin"] = "*" if any_origin else origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = "Retry-After, Location"
        key = (request.method, request.match_info.route.resource, response.status)
        recorder = recorders.get(key)
        if recorder is None:
            resource = key[1]
            route = resource.canonical if resource is not None else "unmatched"
            recorder = recorders[key] = metrics.requests.recorder(
                request.method, route, response.status)
        record(recorder, time.perf_counter() - started)
        return response

    return edge


# -- the generic route handler ------------------------------------------------------------

def _validate(model: type[BaseModel], data: Any, where: str, wire_check: bool = True,
              ) -> dict[str, Any]:
    """The request part as the command wants it, or 422 with every problem. ``wire_check``
    False: the caller knows the raw request holds nothing ``_wire_problems`` looks for."""
    valid: Any = None
    try:
        valid = model.model_validate(data).model_dump(mode="json", exclude_unset=True)
        details = []
    except ValidationError as exc:
        details = errors.validation_details(exc, (where,))
    if wire_check or details:
        named = [d["loc"] for d in details]
        details += [errors.invalid(loc, type_, msg) for loc, type_, msg in _wire_problems(
            data, valid if not details else data, [where]) if loc not in named]
    if details:
        raise errors.ValidationFailed("the request has invalid fields", details)
    return valid


def _wire_problems(sent: Any, read: Any, loc: list) -> Any:
    """What pydantic's lax mode lets through but the contract does not: integers outside
    signed 64 bits (the wire and the database carry no more), and ``true``/``false`` or a
    string of digits read as an integer in a JSON body (a query string is text by nature:
    there ``?page=2`` is the integer 2). ``sent`` is the request as parsed, ``read`` the
    validated values."""
    if isinstance(read, int) and not isinstance(read, bool):
        if not -2**63 <= read < 2**63:
            yield loc, "int64", "Input should be a signed 64-bit integer"
        elif isinstance(sent, bool) or (isinstance(sent, str) and loc[0] == "body"):
            yield loc, "int_type", "Input should be a valid integer"
    elif isinstance(read, dict):
        for key, item in read.items():
            yield from _wire_problems(sent.get(key) if isinstance(sent, dict) else None, item,
                                      [*loc, key])
    elif isinstance(read, list):
        same = isinstance(sent, list) and len(sent) == len(read)
        for index, item in enumerate(read):
            yield from _wire_problems(sent[index] if same else None, item, [*loc, index])


_LONG_NUMBER = re.compile(rb"\d{19}|\d[eE]|\"[\s+-]*\d")


def _may_mislead(raw: bytes) -> bool:
    """Whether raw request text may hold what ``_wire_problems`` looks for: ``true`` or
    ``false``, a number of 19 digits or more (2**63 has 19) or with an exponent, a string that
    starts with a digit. Most requests hold none, and walking every value costs more than this
    search (about a tenth of the gateway's CPU per hold in the rush)."""
    return b"true" in raw or b"false" in raw or _LONG_NUMBER.search(raw) is not None


async def _read_json(request: web.Request, max_bytes: int) -> tuple[Any, bytes]:
    if request.content_length is not None and request.content_length > max_bytes:
        raise errors.BadRequest(f"the body is larger than {max_bytes} bytes")
    if request.content_type != "application/json":
        raise errors.BadRequest("send the body as application/json")
    raw = await request.read()
    try:
        return orjson.loads(raw), raw
    except orjson.JSONDecodeError:
        raise errors.BadRequest("the body is not valid JSON (UTF-8)") from None


def route_handler(route: Route):
    command = route.command.name
    service = route.command.service
    min_role = route.who.min_role
    query_fields = set(route.query.model_fields) if route.query else set()
    rpc_seconds = metrics.rpc_latency.labels(service, command)
    optional_body = route.body is not None and not any(
        field.is_required() for field in route.body.model_fields.values())
    shared = SharedAnswers(route.cache_seconds) if route.cache_seconds else None
    render = route.extra.get("render")
    exporter = route.extra.get("exports")
    if shared is not None and (route.who is not Who.anyone or route.method != "GET"):
        raise ValueError(f"{route.path}: only public reads may share answers")
    local = route.extra.get("local")            # answered by the gateway (seatmaps)
    seat_write = route.extra.get("seat_write")  # its answer carries a seat-map version
    refuse_taken = route.extra.get("refuse_taken")  # a hold: refused here if seats are taken
    if local is not None:
        if route.who is not Who.anyone or route.body is not None or route.query is not None:
            raise ValueError(f"{route.path}: only public reads without a query are answered "
                             "from the gateway's memory")
        return _local_handler(local)

    async def handle(request: web.Request) -> web.Response:
        app = request.app
        caller = app[auth_key].caller(request.headers.get("Authorization"))
        if route.who is not Who.anyone:
            if caller is None:
                raise errors.Unauthorized("sign in first")
            if min_role is not None and not _at_least(caller["role"], min_role):
                raise errors.Forbidden(f"this needs the {min_role.value} role")
        payload: dict[str, Any] = {k: int(v) for k, v in request.match_info.items()}
        if route.who is Who.admin_or_self and payload["id"] != caller["user_id"] \
                and caller["role"] != "admin":
            raise errors.Forbidden("only an admin may see other users")
        if route.extra.get("id_from_caller"):
            payload["id"] = caller["user_id"]
        if route.query is not None:
            query = {k: v for k, v in request.query.items() if k in query_fields}
            payload.update(_validate(route.query, query, "query",
                                     _may_mislead("".join(query.values()).encode())))
        if route.body is not None:
            if optional_body and not request.can_read_body:
                body, raw = {}, b""  # e.g. POST …/pay, whose fields are all optional
            else:
                body, raw = await _read_json(request, app[settings_key].max_body_bytes)
            payload.update(_validate(route.body, body, "body", _may_mislead(raw)))
        if login := route.extra.get("login"):  # the field that names the account
            _limit_login(request, payload["username" if login is True else login])
        if route.idempotency_key and (key := request.headers.get("Idempotency-Key")):
            if not 1 <= len(key) <= 100:
                raise errors.ValidationFailed("Idempotency-Key must be 1..100 characters")
            payload["idempotency_key"] = key
        if exporter is not None:  # a box-office answer may be wanted as a file
            fmt = exporter.wanted(payload.pop("format", None), request.headers.get("Accept", ""))
            if fmt is not None:
                answer = await app[rpc_key].call(command, payload, caller, route.timeout)
                return exporter.respond(answer, fmt, app[settings_key].currency,
                                        str(payload.get("id", "")))
        if caller is None and route.who is Who.anyone:
            caller = ANONYMOUS
        elif caller["role"] in _STAFF:  # staff actions are audited with the address
            caller["address"] = request.remote
        if refuse_taken and app[settings_key].edge_refusals:
            app[seatmaps_key].refuse_taken(payload)
        if shared is not None:
            return await shared.answer(request.path_qs, lambda: call(app, payload, caller))
        return await call(app, payload, caller)

    async def call(app: web.Application, payload: dict[str, Any], caller: dict) -> web.Response:
        started = time.perf_counter()
        try:
            result = await app[rpc_key].call(command, payload, caller, route.timeout)
        finally:
            rpc_seconds.observe(time.perf_counter() - started)
        if seat_write:
            app[seatmaps_key].wrote(result, frees=seat_write == "frees")
        if route.status == 204:
            return web.Response(status=204)
        if render is not None:  # an answer drawn for people (a ticket's QR code)
            return render(result)
        return json_response(result, route.status)

    return handle


def _local_handler(local):
    """A public read the gateway answers from memory (a seat map during an on-sale rush): no
    command to build, so none of the generic handler's steps but the token check (a token,
    if sent, must be valid)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app
        if "Authorization" in request.headers:
            app[auth_key].caller(request.headers["Authorization"])
        return await local(request, app[seatmaps_key])

    return handle


class SharedAnswers:
    """A short-lived cache of public answers, with one call in flight per key: while a call
    for a path is out, other requests for it wait for the same answer."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._answers: dict[str, tuple[float, bytes]] = {}
        self._pending: dict[str, asyncio.Future] = {}

    async def answer(self, key: str, call) -> web.Response:
        now = time.monotonic()
        cached = self._answers.get(key)
        if cached is None or cached[0] <= now:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = asyncio.ensure_future(self._fetch(key, call))
            body = await asyncio.shield(pending)
        else:
            body = cached[1]
        return web.Response(body=body, content_type="application/json")

    async def _fetch(self, key: str, call) -> bytes:
        try:
            body = (await call()).body
            if len(self._answers) > 10_000:
                self._answers.clear()
            self._answers[key] = (time.monotonic() + self.seconds, body)
            return body
        finally:
            del self._pending[key]


def _limit_login(request: web.Request, username: str) -> None:
    """Password guessing is slowed per client address and per account."""
    limits = request.app[limits_key]
    for limiter, key in ((limits["login_addr"], request.remote or "?"),
                         (limits["login_user"], username.lower())):
        wait = limiter.take(key)
        if wait is not None:
            raise errors.RateLimited("too many sign-in attempts; wait a little",
                                     retry_after=wait)


def _at_least(role: str, minimum: Role) -> bool:
    return Role(role).at_least(minimum)


# -- operations -----------------------------------------------------------------------------

async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    app = request.app
    if app[broker_key].connection is None:
        return _not_ready(["broker", *SERVICES])
    results = await asyncio.gather(*(app[rpc_key].ping(s, timeout=1.0) for s in SERVICES),
                                   return_exceptions=True)
    down = [s for s, r in zip(SERVICES, results, strict=True) if isinstance(r, BaseException)]
    if not app[auth_key].loaded:
        down.append("gateway (token revocations not loaded)")
    if down:
        return _not_ready(down)
    return json_response({"status": "ready", "services": list(SERVICES)})


def _not_ready(down: list[str]) -> web.Response:
    return problem(errors.ServiceUnavailable(
        f"not answering: {', '.join(down)}",
        details=[errors.invalid([d], "down", "down") for d in down]))


async def metrics_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(metrics.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- assembly -------------------------------------------------------------------------------

def create_app(settings: Settings | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[edge_middleware(settings, RateLimiter(settings.rate_limit_per_second,
                                                           settings.rate_limit_burst))])
    app[settings_key] = settings
    broker = Broker(settings.amqp_url, f"{settings.namespace}-gateway",
                    settings.amqp_heartbeat_seconds)
    app[broker_key] = broker
    rpc = app[rpc_key] = RpcClient(broker, settings.names, settings.rpc_timeout_seconds)
    metrics.rpc_in_flight.set_function(rpc.in_flight)  # read when scraped, not per request
    auth = Authenticator(settings)
    app[auth_key] = auth
    app[limits_key] = {
        "login_user": RateLimiter(settings.login_attempts_per_minute / 60,
                                  settings.login_attempts_per_minute),
        "login_addr": RateLimiter(settings.login_attempts_per_address_per_minute / 60,
                                  settings.login_attempts_per_address_per_minute),
    }
    Listener(broker, settings.names, ["user.access_changed"], auth.on_event)
    maps = app[seatmaps_key] = seatmaps.SeatMaps(rpc, settings.seat_stream_keepalive_seconds)
    metrics.seat_streams.set_function(maps.streams)
    metrics.seat_shows.set_function(lambda: len(maps.shows))
    Listener(broker, settings.names, seatmaps.EVENTS, maps.on_event)
    broker.on_connect(maps.on_connect)
    broker.on_lost(maps.in_doubt)

    for route in ROUTES:
        app.router.add_route(route.method, API + route.path.replace("{id}", "{id:[0-9]{1,18}}"),
                             route_handler(route))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    openapi.install(app, ROUTES, API)
    webapp.install(app)

    tasks: list[asyncio.Task] = []

    async def start(app: web.Application) -> None:
        await broker.start(wait=10)
        settle_garbage_collector()
        tasks.append(asyncio.create_task(auth.load(app[rpc_key])))
        tasks.append(asyncio.create_task(app[rpc_key].watch_services()))

    async def stop(app: web.Application) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


