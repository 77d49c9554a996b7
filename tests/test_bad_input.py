"""Bad input, hand-written: every answer is a clean 4xx problem+json with the contract's code,
never a 5xx, never a hang.

The cases that apply to every route are generated from the gateway's route table
(``gateway.routes.ROUTES``) and the request models it declares, so routes that land later are
covered without touching this file: oversized, non-JSON, non-UTF-8, deeply nested and wrongly
typed bodies; integers beyond 64 bits, beyond the database's range and written as 1e400 in
every integer body field; path ids of 19+ digits and of no number at all; query parameters of
the wrong type. Then the cases that need the domain: 10,000-seat holds, negative prices,
floats for integers, names with SQL / LIKE / AMQP metacharacters, NUL and emoji.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import BaseModel, ValidationError

from gateway.routes import ROUTES, Route
from tests.conftest import Answer, Client

MAX_BODY = 65536  # TTMS_MAX_BODY_BYTES's default; the tests run with it
TIMEOUT = 15      # seconds: no answer may take longer (RPC deadline is 5 s)
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         409: "conflict", 422: "validation_error", 429: "rate_limited"}

BODY_ROUTES = [r for r in ROUTES if r.body is not None]
ID_ROUTES = [r for r in ROUTES if "{id}" in r.path]
QUERY_ROUTES = [r for r in ROUTES if r.query is not None]


def rid(route: Route) -> str:
    return f"{route.method} {route.path}"


async def send(client: Client, method: str, path: str, body: Any = None, **kw) -> Answer:
    """One request with a deadline; the body is encoded by the standard library, which (unlike
    orjson) writes integers of any size."""
    if body is not None:
        kw["data"] = json.dumps(body, ensure_ascii=False).encode()
        kw["headers"] = {"Content-Type": "application/json", **kw.get("headers", {})}
    return await asyncio.wait_for(client.request(method, path, **kw), TIMEOUT)


def clean(answer: Answer, *statuses: int) -> None:
    """A problem+json answer with one of ``statuses`` and the contract's code for it."""
    assert answer.status in statuses, (answer.status, answer.body)
    assert answer.headers.get("Content-Type", "").startswith("application/problem+json"), \
        answer.headers
    assert answer.code == CODES[answer.status], answer.body
    assert "Traceback" not in orjson.dumps(answer.body).decode()


def path_of(route: Route, client: Client) -> str:
    return route.path.replace("{id}", str(client.user["id"]))


def raw(client: Client, route: Route, data: bytes, content_type: str = "application/json"):
    return send(client, route.method, path_of(route, client), data=data,
                headers={"Content-Type": content_type})


# -- bodies, every route that takes one ------------------------------------------------------

@pytest.mark.parametrize("route", BODY_ROUTES, ids=rid)
async def test_oversized_body_is_400(admin, route):
    body = b'{"name": "' + b"a" * (MAX_BODY + 10) + b'"}'
    clean(await raw(admin, route, body), 400)


@pytest.mark.parametrize("route", BODY_ROUTES[:3], ids=rid)
async def test_oversized_chunked_body_without_length_is_400(admin, route):
    async def chunks():
        yield b'{"name": "'
        for _ in range(20):
            yield b"a" * 10_000
        yield b'"}'

    answer = await send(admin, route.method, path_of(route, admin), data=chunks(),
                        headers={"Content-Type": "application/json"})
    clean(answer, 400)


BROKEN_BODIES = {
    "not-json": (b"{nope", "application/json"),
    "empty": (b"", "application/json"),
    "non-utf8": (b'{"name": "\xff\xfe\xfa"}', "application/json"),
    "latin1-declared": ('{"name": "caf\u00e9"}'.encode("latin-1"), "application/json"),
    "utf16": ('{"name": "x"}'.encode("utf-16"), "application/json"),
    "form": (b"name=x", "application/x-www-form-urlencoded"),
    "text": (b'{"name": "x"}', "text/plain"),
    "deep-100000": (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    "deep-30000-under-the-size-limit": (b"[" * 30_000 + b"]" * 30_000, "application/json"),
    "deep-in-a-field": (b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json"),
    "infinity-literal": (b'{"price": Infinity}', "application/json"),
    "nan-literal": (b'{"price": NaN}', "application/json"),
    "number-1e400": (b'{"price": 1e400}', "application/json"),
    "trailing-garbage": (b'{"name": "x"} {}', "application/json"),
    "nul-byte-outside-strings": (b'{"name": "x"}\x00', "application/json"),
}


@pytest.mark.parametrize("route", BODY_ROUTES, ids=rid)
@pytest.mark.parametrize("case", sorted(BROKEN_BODIES))
async def test_a_body_that_is_not_json_is_400(admin, route, case):
    data, content_type = BROKEN_BODIES[case]
    answer = await raw(admin, route, data, content_type)
    if case == "empty" and not _refuses_empty(route.body):
        # No body where every field is optional reads as {} (POST …/pay with no body).
        assert answer.status < 500, answer.body
        return
    clean(answer, 400)


@pytest.mark.parametrize("route", BODY_ROUTES, ids=rid)
@pytest.mark.parametrize("body", ["[]", "[1, 2]", '"text"', "42", "null", "true"])
async def test_json_that_is_not_an_object_is_422(admin, route, body):
    clean(await raw(admin, route, body.encode()), 422)


def _properties(model: type[BaseModel]) -> dict[str, dict]:
    return model.model_json_schema()["properties"]


def _is(schema: dict, kind: str) -> bool:
    return schema.get("type") == kind or any(s.get("type") == kind
                                            for s in schema.get("anyOf", []))


INT_FIELDS = [(route, name) for route in BODY_ROUTES
              for name, schema in _properties(route.body).items() if _is(schema, "integer")]
STR_FIELDS = [(route, name) for route in BODY_ROUTES
              for name, schema in _properties(route.body).items() if _is(schema, "string")]
HUGE = {
    "2**70": b"1180591620717411303424",
    "2**64": b"18446744073709551616",
    "2**64-1": b"18446744073709551615",
    "2**63": b"9223372036854775808",
    "-2**63-1": b"-9223372036854775809",
    "-2**70": b"-1180591620717411303424",
    "1e30": b"1e30",
    "1.5": b"1.5",
    "string": b'"many"',
    "true": b"true",
    "list": b"[1]",
}


@pytest.mark.parametrize(("route", "field"), INT_FIELDS,
                         ids=[f"{rid(r)} {f}" for r, f in INT_FIELDS])
@pytest.mark.parametrize("value", list(HUGE))
async def test_integers_out_of_range_or_not_integers_are_422_naming_the_field(
        admin, route, field, value):
    """Every integer field of every body: past 64 bits, past the database's BIGINT, floats
    and strings are refused by validation, naming the field (never a 5xx from the database
    or from a number the wire cannot carry)."""
    data = b'{"' + field.encode() + b'": ' + HUGE[value] + b"}"
    answer = await raw(admin, route, data)
    clean(answer, 422)
    if value == "true" and _refuses_empty(route.body):
        return  # true is told from 1 once the rest of the body is valid (pydantic reads it)
    assert ["body", field] in [e["loc"][:2] for e in answer.body["errors"]], answer.body


async def test_true_is_not_an_integer_in_a_complete_body(manager):
    answer = await send(manager, "POST", "/studios", {"name": _name("Bool"), "rows": True,
                                                      "cols": 2})
    clean(answer, 422)
    assert answer.body["errors"] == [{"loc": ["body", "rows"], "type": "int_type",
                                      "msg": "Input should be a valid integer"}]
    seats = await send(manager, "POST", "/reservations", {
        "schedule_id": 1, "seats": [{"row": 1, "col": False}]})
    clean(seats, 422)


@pytest.mark.parametrize(("route", "field"), STR_FIELDS,
                         ids=[f"{rid(r)} {f}" for r, f in STR_FIELDS])
async def test_an_endless_string_in_any_field_is_refused(admin, route, field):
    answer = await raw(admin, route, orjson.dumps({field: "x" * (MAX_BODY - 100)}))
    clean(answer, 422)


# -- path ids, every route that has one ----------------------------------------------------------

NO_SUCH_ID = ["999999999999999999", "9223372036854775807", "9223372036854775808",
              "99999999999999999999999", "-1", "0", "abc", "1.5", "1e3", "%00", "0x10",
              "1%20", "１２", "00000000000000000001"]


@pytest.mark.parametrize("route", ID_ROUTES, ids=rid)
@pytest.mark.parametrize("value", NO_SUCH_ID)
async def test_path_ids_that_name_nothing_are_404(admin, route, value):
    body = {} if route.body is not None else None
    answer = await send(admin, route.method, route.path.replace("{id}", value), body)
    needs_fields = route.body is not None and _refuses_empty(route.body)
    if value == "00000000000000000001" or (needs_fields and answer.status == 422):
        clean(answer, 404, 422)  # 20 digits: beyond the router; or the body is checked first
    else:
        clean(answer, 404)


def _refuses_empty(model: type[BaseModel]) -> bool:
    try:
        model.model_validate({})
    except ValidationError:
        return True
    return False


# -- query parameters, every route that has them --------------------------------------------------

QUERY_PARAMS = [(route, name, schema) for route in QUERY_ROUTES
                for name, schema in _properties(route.query).items()]
BAD_QUERY_VALUES = ["abc", "1180591620717411303424", "18446744073709551615",
                    "9223372036854775808", "-9223372036854775809", "1e400", "1.5", "-1", "",
                    "%", "'; DROP TABLE x; --", "\x00", "🎭", "[1]", "true"]


@pytest.mark.parametrize(("route", "name", "schema"), QUERY_PARAMS,
                         ids=[f"{rid(r)} {n}" for r, n, _ in QUERY_PARAMS])
@pytest.mark.parametrize("value", BAD_QUERY_VALUES)
async def test_query_params_of_the_wrong_type_are_422_never_5xx(admin, route, name, schema,
                                                                value):
    answer = await send(admin, route.method, path_of(route, admin), params={name: value})
    if _is(schema, "integer") and not _fits_int(value, schema):
        clean(answer, 422)
        assert ["query", name] in [e["loc"][:2] for e in answer.body["errors"]], answer.body
    elif answer.status >= 400:
        clean(answer, 404, 422)
    else:
        assert answer.status == 200, answer.body


def _fits_int(value: str, schema: dict) -> bool:
    try:
        number = int(value)
    except ValueError:
        return False
    bounds = [schema, *schema.get("anyOf", [])]
    low = max((b["minimum"] for b in bounds if "minimum" in b), default=-(2**63))
    high = min((b["maximum"] for b in bounds if "maximum" in b), default=2**63 - 1)
    return low <= number <= high


async def test_repeated_and_unknown_query_params_are_harmless(admin):
    answer = await send(admin, "GET", "/users", params=[("page", "1"), ("page", "abc"),
                                                        ("nonsense", "1")])
    assert answer.status in (200, 422) and answer.status < 500, answer.body


# -- headers -----------------------------------------------------------------------------------

async def test_a_huge_header_or_request_line_is_400(api):
    """Refused by aiohttp's HTTP parser before the gateway runs, so in text/plain (as the
    OpenAPI document says), not problem+json."""
    answer = await send(api.as_("x" * 20_000), "GET", "/users/me")
    assert answer.status == 400, answer.body
    answer = await send(api, "GET", "/plays", params={"q": "x" * 20_000})
    assert answer.status == 400, answer.body


async def test_an_idempotency_key_too_long_is_422(customer):
    answer = await send(customer, "POST", "/reservations",
                        {"schedule_id": 1, "seats": [{"row": 1, "col": 1}]},
                        headers={"Idempotency-Key": "k" * 101})
    clean(answer, 422)


# -- the domain: seats, prices, names ------------------------------------------------------------

def seat_list(n: int) -> list[dict]:
    return [{"row": i // 100 + 1, "col": i % 100 + 1} for i in range(n)]


async def test_a_10000_seat_hold_is_refused(customer):
    big = await send(customer, "POST", "/reservations",
                     {"schedule_id": 1, "seats": seat_list(10_000)})
    clean(big, 400)  # past the body limit
    compact = orjson.dumps({"schedule_id": 1, "seats": [[1, 1]] * 10_000})
    clean(await send(customer, "POST", "/reservations", data=compact,
                     headers={"Content-Type": "application/json"}), 422)
    under_limit = await send(customer, "POST", "/reservations",
                             {"schedule_id": 1, "seats": seat_list(2_000)})
    clean(under_limit, 422)
    assert ["body", "seats"] in [e["loc"][:2] for e in under_limit.body["errors"]]


@pytest.mark.parametrize("seats", [
    [], [{"row": 0, "col": 1}], [{"row": 101, "col": 1}], [{"row": -1, "col": -1}],
    [{"row": 1, "col": 1}, {"row": 1, "col": 1}], [{"row": 1.5, "col": 1}],
    [{"row": 2**70, "col": 1}], [{"row": 1}], [{"row": 1, "col": 1, "kind": "seat"}],
    [None], [[1, 1]], "A1"], ids=repr)
async def test_bad_seat_lists_are_422(customer, seats):
    clean(await send(customer, "POST", "/reservations", {"schedule_id": 1, "seats": seats}), 422)


async def test_seat_map_edits_past_the_map_or_of_unknown_kind_are_refused(manager):
    studio = await send(manager, "POST", "/studios", {"name": _name("Edit"), "rows": 3,
                                                      "cols": 3})
    assert studio.status == 201, studio.body
    path = f"/studios/{studio.body['id']}/seats"
    for seats in ([{"row": 4, "col": 1, "kind": "aisle"}],
                  [{"row": 1, "col": 1, "kind": "vip"}],
                  [{"row": 1, "col": 1, "kind": "aisle", "price": 1}]):
        clean(await send(manager, "PATCH", path, {"seats": seats}), 404, 409, 422)
    full = [{"row": r, "col": c, "kind": "aisle"} for r in range(1, 101) for c in range(1, 101)]
    clean(await send(manager, "PATCH", path, {"seats": full}), 400)


def _name(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def _play(**changes) -> dict:
    today = date.today()
    body = {"name": _name("Bad input play"), "kind": "drama", "rating": "all",
            "duration_minutes": 60, "starts_on": str(today),
            "ends_on": str(today + timedelta(days=10)), "price": 4500}
    body.update(changes)
    return body


@pytest.mark.parametrize("price", [-1, -(2**63), 45.5, "4500", None, 10**10], ids=repr)
async def test_negative_fractional_or_absurd_prices_are_422(manager, price):
    answer = await send(manager, "POST", "/plays", _play(price=price))
    clean(answer, 422)  # "4500" too: an integer in a JSON body is a JSON number
    assert ["body", "price"] in [e["loc"][:2] for e in answer.body["errors"]]


async def test_negative_prices_on_updates_and_shows_are_422(manager):
    play = await send(manager, "POST", "/plays", _play())
    assert play.status == 201, play.body
    clean(await send(manager, "PATCH", f"/plays/{play.body['id']}", {"price": -1}), 422)
    studio = await send(manager, "POST", "/studios", {"name": _name("Price"), "rows": 2,
                                                      "cols": 2})
    starts_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0).isoformat()
    show_body = {"play_id": play.body["id"], "studio_id": studio.body["id"],
                 "starts_at": starts_at}
    clean(await send(manager, "POST", "/schedules", {**show_body, "price": -100}), 422)
    show = await send(manager, "POST", "/schedules", show_body)
    assert show.status == 201, show.body
    clean(await send(manager, "PATCH", f"/schedules/{show.body['id']}", {"price": -5}), 422)
    clean(await send(manager, "PATCH", f"/schedules/{show.body['id']}", {"price": 1.25}), 422)


@pytest.mark.parametrize("field,value", [
    ("rows", 2.5), ("cols", 0), ("rows", 101), ("rows", -(2**63) - 1), ("rows", True),
    ("cols", "ten"), ("rows", 2**70)], ids=repr)
async def test_studio_sizes_that_are_not_small_integers_are_422(manager, field, value):
    body = {"name": _name("Size"), "rows": 5, "cols": 5, field: value}
    answer = await send(manager, "POST", "/studios", body)
    clean(answer, 422)


@pytest.mark.parametrize("starts_at", [
    "9999-12-31T23:00:00Z", "0001-01-01T00:00:00+14:00", "2026-13-01T00:00:00Z",
    "2026-01-01T00:00:00", "yesterday", "1e400"], ids=repr)
async def test_dates_at_the_edges_of_time_are_refused_cleanly(manager, starts_at):
    """A show near year 9999 would end in year 10000; a naive time has no offset."""
    play = await send(manager, "POST", "/plays", _play(ends_on="9999-12-31"))
    assert play.status == 201, play.body
    studio = await send(manager, "POST", "/studios", {"name": _name("Edge"), "rows": 2,
                                                      "cols": 2})
    answer = await send(manager, "POST", "/schedules", {
        "play_id": play.body["id"], "studio_id": studio.body["id"], "starts_at": starts_at})
    clean(answer, 422)


NASTY = {
    "sql-quote": "O'Brien\"s ' OR '1'='1",
    "sql-comment": "x'; DROP TABLE studios; --",
    "like-wildcards": "100% _real_ \\ stage",
    "amqp-routing": "a.b.*.#.ttms.events",
    "amqp-hash-star": "#*#*",
    "emoji": "🎭 Théâtre 剧场 🎟️",
    "backslashes": "\\\\server\\share\\",
    "percent-encoded": "%27%20OR%201%3D1",
    "json-ish": '{"$gt": ""}',
    "control-chars": "tab\there\nnewline",
    "rtl-and-zero-width": "\u202eevil\u200b",
}


@pytest.mark.parametrize("kind", sorted(NASTY))
async def test_names_with_metacharacters_are_stored_exactly(manager, api, kind):
    name = f"{NASTY[kind]} {uuid.uuid4().hex[:6]}"
    studio = await send(manager, "POST", "/studios", {"name": name, "rows": 2, "cols": 2,
                                                      "description": NASTY[kind]})
    assert studio.status == 201, studio.body
    assert studio.body["name"] == name.strip()
    again = await send(manager, "GET", f"/studios/{studio.body['id']}")
    assert again.body["name"] == name.strip() and again.body["description"] == NASTY[kind]
    play = await send(manager, "POST", "/plays", _play(name=name, area=NASTY[kind],
                                                       description=NASTY[kind]))
    assert play.status == 201, play.body
    fetched = await send(api, "GET", f"/plays/{play.body['id']}")
    assert fetched.body["name"] == play.body["name"] and fetched.body["area"] == NASTY[kind]
    for path, client in (("/studios", manager), ("/plays", api)):
        found = await send(client, "GET", path, params={"q": NASTY[kind], "page_size": 100})
        assert found.status == 200, found.body
        assert all(NASTY[kind].lower() in item["name"].lower() for item in found.body["items"]), \
            f"q={NASTY[kind]!r} matched names without it: {found.body['items'][:3]}"


@pytest.mark.parametrize("q", ["%", "_", "%%", "\\", "\\%"])
async def test_search_wildcards_match_literally(manager, api, q):
    """``q`` is "name contains": a % or _ in it is a character, not a LIKE wildcard."""
    for path, client in (("/studios", manager), ("/plays", api)):
        found = await send(client, "GET", path, params={"q": q, "page_size": 100})
        assert found.status == 200, found.body
        assert all(q in item["name"] for item in found.body["items"]), \
            (path, q, [i["name"] for i in found.body["items"]][:5])


@pytest.mark.parametrize("name", ["nul\x00byte", "\x00"], ids=["nul-inside", "only-nul"])
async def test_a_nul_in_a_name_is_stored_exactly_or_refused(manager, name):
    answer = await send(manager, "POST", "/studios", {"name": name, "rows": 2, "cols": 2})
    if answer.status == 201:
        fetched = await send(manager, "GET", f"/studios/{answer.body['id']}")
        assert fetched.body["name"] == answer.body["name"] == name
    else:
        clean(answer, 422)


@pytest.mark.parametrize("username", [
    "o'brien", "a;drop", "100%", "a_b%", "who#", "star*", "emoji🎭", "nul\x00x", "sp ace",
    "ab", "x" * 33, "../../etc", "a.b.c#"])
async def test_usernames_with_metacharacters_are_422_and_cannot_sign_in(api, username):
    clean(await send(api, "POST", "/auth/register",
                     {"username": username, "password": "password123"}), 422)
    login = await send(api, "POST", "/auth/login", {"username": username,
                                                    "password": "password123"})
    clean(login, 401, 429)


async def test_usernames_differing_only_in_case_collide_cleanly(api):
    username = f"Case.{uuid.uuid4().hex[:8]}"
    first = await send(api, "POST", "/auth/register", {"username": username,
                                                       "password": "password123"})
    assert first.status == 201, first.body
    second = await send(api, "POST", "/auth/register", {"username": username.upper(),
                                                        "password": "password123"})
    assert second.status in (201, 409), second.body
    if second.status == 409:
        clean(second, 409)


async def test_dotted_usernames_are_just_names(api):
    """``.`` is allowed in usernames and also the AMQP routing separator."""
    username = f"a.b.{uuid.uuid4().hex[:6]}.c"
    answer = await send(api, "POST", "/auth/register", {"username": username,
                                                        "password": "password123"})
    assert answer.status == 201, answer.body
    login = await send(api, "POST", "/auth/login", {"username": username,
                                                    "password": "password123"})
    assert login.status == 200


async def test_a_slow_client_does_not_hold_the_gateway(system, api):
    """A client that sends half a body and stops: other requests are answered meanwhile."""
    host, port = "127.0.0.1", system.settings.gateway_port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"user")
    await writer.drain()
    try:
        answer = await send(api, "GET", "/plays")
        assert answer.status == 200
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, aiohttp.ClientError):
            pass
    del reader
