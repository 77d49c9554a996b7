"""The OpenAPI 3.1 document, generated from the route declarations and their pydantic models
(the same ones that validate requests), and Swagger UI served from the installed package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import swagger_ui
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.routes.base import Route, Who
from messages import errors

REF = "#/components/schemas/{model}"

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "code": {"type": "string", "enum": sorted(errors.BY_CODE)},
        "errors": {"type": "array", "items": {
            "type": "object", "required": ["loc", "type", "msg"], "properties": {
                "loc": {"type": "array", "items": {"$ref": "#/components/schemas/Location"},
                        "description": "Where: `body`, `query` or `path`, then field "
                                       "names and list positions; for `seat_unavailable` "
                                       "the seat itself as its last item."},
                "type": {"type": "string",
                         "description": "What is wrong, as a stable name a client may word "
                                        "in its own language: pydantic's error types "
                                        "(`missing`, `string_too_short`, …) and the "
                                        "service rules' (`schedule_overlap`, "
                                        "`seat_unavailable`, …); see the API reference."},
                "msg": {"type": "string", "description": "The same in English."},
                "ctx": {"type": "object", "description": "The values the wording needs "
                        "(`min_length`, `ge`, `row`, …), when it needs any."}}}},
    },
}
# One step of an error's `loc`. `seat_unavailable` names each seat as an object
# (`["body", "seats", {"row": 3, "col": 7}]`), the shape clients have read since the first
# version; the document says so, so a generated client reads it as one of three types.
LOCATION_SCHEMA = {
    "oneOf": [
        {"type": "string", "description": "a part of the request or a field name"},
        {"type": "integer", "description": "a position in a list"},
        {"$ref": "#/components/schemas/SeatPlace"},
    ],
}
SEAT_PLACE_SCHEMA = {
    "type": "object", "description": "a seat of a show, named by its row and column",
    "required": ["row", "col"], "additionalProperties": False,
    "properties": {"row": {"type": "integer", "minimum": 1},
                   "col": {"type": "integer", "minimum": 1}},
}


def build(routes: list[Route], base: str) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], str]] = []
    for route in routes:
        if route.body:
            models.append((route.body, "validation"))
        if isinstance(route.response, type) and issubclass(route.response, BaseModel):
            models.append((route.response, "serialization"))
    keys, definitions = models_json_schema(models, ref_template=REF)
    schemas = definitions.get("$defs", {})
    for route in routes:  # the enums that query parameters refer to (GroupBy, PlayKind, …)
        if route.query:
            for name, schema in route.query.model_json_schema(ref_template=REF).get(
                    "$defs", {}).items():
                schemas.setdefault(name, schema)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["Location"] = LOCATION_SCHEMA
    schemas["SeatPlace"] = SEAT_PLACE_SCHEMA
    operation_ids = {f"{r.method} {r.path}": _operation_id(r) for r in routes}

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": operation_ids[f"{route.method} {route.path}"],
            "description": f"Who: {route.who.value}." + (
                f" {route.rules}" if route.rules else ""),
            "parameters": _parameters(route),
            "responses": _responses(route, keys),
        }
        links = _links(route, routes, operation_ids)
        if links:
            operation["responses"][str(route.status)]["links"] = links
        if route.who is not Who.anyone:
            operation["security"] = [{"bearer": []}]
        if route.body:
            required = any(f.is_required() for f in route.body.model_fields.values())
            operation["requestBody"] = {"required": required, "content": {
                "application/json": {"schema": keys[(route.body, "validation")]}}}
        paths.setdefault(base + route.path, {})[route.method.lower()] = operation

    return {
        "openapi": "3.1.0",
        "info": {"title": "TTMS", "version": "1.0.0",
                 "description": "Theater ticket management: studios, plays, shows, seat sales."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
    }


def _operation_id(route: Route) -> str:
    return route.command.name.replace(".", "_") + (
        "_self" if route.extra.get("id_from_caller") else "")


def _links(route: Route, routes: list[Route], operation_ids: dict[str, str],
           ) -> dict[str, Any]:
    """Where the id in a success answer leads: a create (201) to every operation on
    ``<its path>/{id}`` and below, plus the route's own ``links``. Schemathesis's stateful
    phase follows them (create → read → change → delete)."""
    targets: list[tuple[str, str]] = []
    if route.status == 201 and "{id}" not in route.path:
        prefix = route.path + "/{id}"
        targets = [(f"{r.method} {r.path}", "$response.body#/id") for r in routes
                   if r.path == prefix or r.path.startswith(prefix + "/")]
    links = {}
    for target, value in (*targets, *route.links):
        operation_id = operation_ids[target]
        links[operation_id] = {"operationId": operation_id, **(
            {"parameters": {"id": value}} if isinstance(value, str) else {"requestBody": value})}
    return links


def _parameters(route: Route) -> list[dict[str, Any]]:
    params = []
    if "{id}" in route.path:
        params.append({"name": "id", "in": "path", "required": True,
                       "schema": {"type": "integer", "minimum": 0,
                                  "maximum": 999_999_999_999_999_999}})
    if route.query:
        schema = route.query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required,
                           "schema": _not_null(prop)})
    if route.idempotency_key:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "description": "The same key again gets the first answer for 24 h; "
                                      "with a different request, 422 idempotency_key_reused",
                       "schema": {"type": "string", "minLength": 1, "maxLength": 100}})
    return params


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or a value: never null (pydantic's ``X | None``)."""
    schema = {k: v for k, v in schema.items() if not (k == "default" and v is None)}
    options = [o for o in schema.get("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        del schema["anyOf"]
        schema = {**options[0], **schema}
    elif options:
        schema["anyOf"] = options
    return schema


def _responses(route: Route, keys: dict) -> dict[str, Any]:
    problem = {"content": {"application/problem+json": {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}
    responses: dict[str, Any] = {}
    if route.status == 204:
        responses["204"] = {"description": "Done"}
    else:
        response: dict[str, Any] = {"description": "OK"}
        if route.extra.get("content_type"):  # not JSON: a QR code, an event stream
            response["content"] = {route.extra["content_type"]: {
                "schema": route.extra.get("content_schema", {"type": "string"})}}
        elif (route.response, "serialization") in keys:
            response["content"] = {"application/json": {
                "schema": keys[(route.response, "serialization")]}}
        for fmt in getattr(route.extra.get("exports"), "formats", ()):  # issue 20.5
            response.setdefault("content", {})[
                "text/csv" if fmt == "csv" else
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"] = {
                "schema": {"type": "string"} if fmt == "csv" else
                {"type": "string", "contentMediaType": "application/octet-stream"}}
        responses[str(route.status)] = response
    # Every status the route can answer: 401 for any bad token (even where none is needed),
    # 403 wherever a role or ownership is checked (services check owners, and clerk-only
    # filters such as ?user_id=), 404 for a path id or a body naming another resource (or a
    # route that says so: a lookup by name).
    codes = ["400", "401", "422", "429", "503", "504"]
    if route.who is not Who.anyone:
        codes.append("403")
    if "{id}" in route.path or route.extra.get("not_found") or (route.body is not None and any(
            name.endswith("_id") for name in route.body.model_fields)):
        codes.append("404")
    if route.method in ("POST", "PATCH", "DELETE") or route.extra.get("conflict"):
        codes.append("409")
    for code in sorted(set(codes)):
        responses[code] = {"description": "Problem", **problem}
        if code == "400":  # aiohttp's HTTP parser answers before the gateway runs
            responses[code] = {
                "description": "Problem; in text/plain when the request line or a header is "
                               "longer than 8190 bytes",
                "content": {**problem["content"], "text/plain": {"schema": {"type": "string"}}}}
        if code == "422" and route.idempotency_key:
            responses[code] = {
                "description": "Problem: `validation_error`; or `idempotency_key_reused` when "
                               "the Idempotency-Key was already used with a different request "
                               "(another method, path or body): nothing was done",
                **problem}
        if code in ("409", "429", "503"):  # rate limits, idempotency keys in flight, loading
            responses[code]["headers"] = {"Retry-After": {
                "description": "seconds to wait before trying again",
                "schema": {"type": "integer", "minimum": 1}}}
    return responses


SWAGGER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>TTMS API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "%s", dom_id: "#swagger-ui"});</script>
</body></html>"""


def install(app: web.Application, routes: list[Route], base: str) -> None:
    document = orjson.dumps(build(routes, base))
    spec_path = f"{base}/openapi.json"

    async def spec(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=SWAGGER_PAGE % spec_path, content_type="text/html")

    app.router.add_get(spec_path, spec)
    app.router.add_get("/docs", docs)
    app.router.add_static("/docs/static", Path(swagger_ui.__file__).parent / "static")
