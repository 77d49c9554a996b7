"""The OpenAPI document as a contract a generated client can trust (issue 16, point 8).

What the server sends matches what the document declares (a `seat_unavailable` refusal
included), JSON types are taken strictly (a date is a string, a boolean is true/false, an
integer is a number), a wrong method is 405 with `Allow` on every path, the rules between
fields that a schema cannot say are in the operations' descriptions, and creates link to the
operations on what they created (for schemathesis's stateful phase and for readers).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import date, timedelta

import jsonschema_rs  # comes with schemathesis (requirements-dev.txt)
import pytest

from gateway.routes import ROUTES
from tests.catalogue import at, make_play, make_schedule, make_studio
from tests.conftest import Client

API = "/api/v1"
TIMEOUT = 15


async def document(api: Client) -> dict:
    answer = await api.get("/openapi.json")
    assert answer.status == 200
    return answer.body


def validator(doc: dict, ref: str):
    """A validator of one schema of the document, its references resolved in the document."""
    return jsonschema_rs.Draft202012Validator(
        {"$ref": ref, "components": doc["components"]}, validate_formats=True)


# -- what is sent is what is declared --------------------------------------------------------

async def test_a_seat_unavailable_refusal_matches_the_document(api, manager, customer):
    """`errors[].loc` of `seat_unavailable` names each seat as an object {row, col}; the
    document declared only strings and integers there (ST108)."""
    studio = await make_studio(manager, rows=2, cols=2)
    show = await make_schedule(manager, await make_play(manager), studio, at(days=3))
    body = {"schedule_id": show["id"], "seats": [{"row": 1, "col": 1}, {"row": 2, "col": 2}]}
    assert (await customer.post("/reservations", body)).status == 201
    refused = await customer.post("/reservations", body)
    assert refused.status == 409 and refused.code == "seat_unavailable", refused.body
    assert {"row": 1, "col": 1} in [e["loc"][-1] for e in refused.body["errors"]]
    doc = await document(api)
    declared = doc["paths"][f"{API}/reservations"]["post"]["responses"]["409"]
    schema = declared["content"]["application/problem+json"]["schema"]
    errors = list(validator(doc, schema["$ref"]).iter_errors(refused.body))
    assert not errors, [str(e) for e in errors]


async def test_every_declared_problem_shape_is_what_the_gateway_sends(api, customer):
    """A plain validation refusal (strings and integers in `loc`) still fits the document,
    each item naming its `type` and the `ctx` its wording needs."""
    answer = await customer.post("/reservations", {"schedule_id": 1, "seats": [
        {"row": 1, "col": 1}, {"row": 0, "col": 1}]})
    assert answer.status == 422, answer.body
    assert {"loc": ["body", "seats", 1, "row"], "type": "greater_than_equal",
            "msg": "Input should be greater than or equal to 1",
            "ctx": {"ge": 1}} in answer.body["errors"]
    doc = await document(api)
    assert not list(validator(doc, "#/components/schemas/Problem").iter_errors(answer.body))


async def test_a_rule_of_a_contract_says_its_own_type(customer):
    """A contract's own rule (a validator, not a constraint) has its own `type`, not
    pydantic's catch-all `value_error` with "Value error, " before the words."""
    answer = await customer.post("/reservations", {"schedule_id": 1, "seats": [
        {"row": 1, "col": 1}, {"row": 1, "col": 1}]})
    assert answer.status == 422, answer.body
    assert answer.body["errors"] == [{"loc": ["body", "seats"], "type": "seats_distinct",
                                      "msg": "seats must be distinct"}]
    both = await customer.post("/reservations", {"schedule_id": 1, "quantity": 2,
                                                 "seats": [{"row": 1, "col": 1}]})
    assert [e["type"] for e in both.body["errors"]] == ["seats_or_quantity"]


# -- strict JSON types -----------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1764547200, "0", "1764547200", True, "2026-12-01T00:00:00",
                                   "20261201"], ids=repr)
async def test_a_play_date_must_be_a_date_string(manager, value):
    play = await make_play(manager)
    answer = await manager.patch(f"/plays/{play['id']}", {"starts_on": value})
    assert answer.status == 422, answer.body
    assert ["body", "starts_on"] in [e["loc"] for e in answer.body["errors"]]
    unchanged = await manager.get(f"/plays/{play['id']}")
    assert unchanged.body["starts_on"] == play["starts_on"]


async def test_a_play_date_written_as_a_date_is_taken(manager):
    play = await make_play(manager)
    day = str(date.today() - timedelta(days=31))
    answer = await manager.patch(f"/plays/{play['id']}", {"starts_on": day})
    assert answer.status == 200 and answer.body["starts_on"] == day, answer.body


@pytest.mark.parametrize("value", [0, 1, "false", "true", "0", None], ids=repr)
async def test_disabled_must_be_true_or_false(admin, new_user, value):
    user = await new_user("customer")
    answer = await admin.patch(f"/users/{user.user['id']}", {"disabled": value})
    assert answer.status == 422, answer.body
    assert ["body", "disabled"] in [e["loc"] for e in answer.body["errors"]]
    assert (await user.get("/users/me")).status == 200  # not disabled


async def test_disabled_false_is_taken(admin, new_user):
    user = await new_user("customer")
    answer = await admin.patch(f"/users/{user.user['id']}", {"disabled": False})
    assert answer.status == 200 and answer.body["disabled"] is False, answer.body


@pytest.mark.parametrize("field,value", [("rows", "10"), ("cols", " 5"), ("rows", "1e1")],
                         ids=repr)
async def test_an_integer_in_a_body_is_a_json_number(manager, field, value):
    answer = await manager.post("/studios", {"name": f"Strict {value!r}", "rows": 5, "cols": 5,
                                             field: value})
    assert answer.status == 422, answer.body
    assert ["body", field] in [e["loc"] for e in answer.body["errors"]]


@pytest.mark.parametrize("path,params,field", [
    ("/box-office", {"to": "0"}, "to"),
    ("/box-office", {"from": "1764547200"}, "from"),
    ("/box-office", {"to": "2026-12-01T00:00:00Z"}, "to"),
    ("/schedules", {"from": "1000000000"}, "from"),
    ("/schedules", {"to": "0"}, "to"),
    ("/schedules", {"to": "2026-12-01"}, "to"),
], ids=lambda v: repr(v) if isinstance(v, dict) else v)
async def test_query_dates_must_be_written_in_iso_form(manager, path, params, field):
    answer = await manager.get(path, params=params)
    assert answer.status == 422, answer.body
    assert ["query", field] in [e["loc"] for e in answer.body["errors"]]


async def test_query_dates_in_iso_form_are_taken(manager):
    assert (await manager.get("/box-office", params={"from": "2026-01-01",
                                                     "to": "2026-12-31"})).status == 200
    answer = await manager.get("/schedules", params={"from": "2026-01-01T00:00:00Z",
                                                     "to": "2026-12-31T10:00:00-05:00"})
    assert answer.status == 200, answer.body


# -- 405 with Allow ------------------------------------------------------------------------

def _methods_by_path() -> dict[str, set[str]]:
    methods: dict[str, set[str]] = defaultdict(set)
    for route in ROUTES:
        methods[API + route.path.replace("{id}", "1")].add(route.method)
    return methods


async def test_a_wrong_method_is_405_with_allow_on_every_path(api):
    paths = {**_methods_by_path(), "/healthz": {"GET"}, "/readyz": {"GET"},
             "/metrics": {"GET"}, f"{API}/openapi.json": {"GET"}, "/docs": {"GET"}}
    for path, declared in sorted(paths.items()):
        for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - declared):
            answer = await asyncio.wait_for(
                api.as_(None).request(method, api.base + path), TIMEOUT)
            assert answer.status == 405, (method, path, answer.status)
            allow = {m.strip() for m in answer.headers.get("Allow", "").split(",") if m.strip()}
            assert allow - {"HEAD"} == declared, (method, path, answer.headers.get("Allow"))
            assert answer.headers["Content-Type"].startswith("application/problem+json")


# -- the document says what a schema cannot ---------------------------------------------------

RULES = {  # operation → words its description must carry
    ("post", "/plays"): ["`starts_on` must not be after `ends_on`"],
    ("patch", "/plays/{id}"): ["`starts_on` must not be after `ends_on`"],
    ("post", "/schedules"): ["inside the play's run", "schedule_conflict"],
    ("patch", "/schedules/{id}"): ["inside the play's run", "schedule_conflict"],
    ("get", "/schedules"): ["`from` at or after `to` selects nothing"],
    ("get", "/box-office"): ["`from` after `to` is 422"],
    ("patch", "/studios/{id}/seats"): ["inside the studio"],
    ("post", "/reservations"): ["distinct", "seat_unavailable", "customer_id"],
}


async def test_rules_between_fields_are_in_the_descriptions(api):
    doc = await document(api)
    for (method, path), words in RULES.items():
        description = doc["paths"][API + path][method]["description"]
        for word in words:
            assert word in description, (method, path, description)


async def test_the_schema_says_what_it_can(api):
    """Distinct seats and the years of a show are in the schemas, not only in prose."""
    doc = await document(api)
    schemas = doc["components"]["schemas"]
    assert schemas["HoldBody"]["properties"]["seats"]["uniqueItems"] is True
    assert schemas["CreateScheduleBody"]["properties"]["starts_at"]["pattern"]
    assert schemas["EditSeatsBody"]["properties"]["seats"]["maxItems"] <= 1000


async def test_creates_link_to_the_operations_on_what_they_created(api):
    doc = await document(api)
    links = {(method, path[len(API):]): set(op["responses"][code].get("links", {}))
             for path, ops in doc["paths"].items() for method, op in ops.items()
             for code in op["responses"] if code.startswith("2")}
    assert {"studio_get", "studio_delete", "studio_edit_seats"} <= links["post", "/studios"]
    assert {"play_get", "play_update", "order_box_office_play"} <= links["post", "/plays"]
    assert {"ticket_seats", "play_cancel_schedule", "ticket_hold"} <= \
        links["post", "/schedules"]
    assert {"ticket_pay", "ticket_cancel", "order_get"} <= links["post", "/reservations"]
    assert "ticket_refund" in links["post", "/reservations/{id}/pay"]
    assert {"user_get", "user_delete"} <= links["post", "/users"]
    operation_ids = {op["operationId"] for ops in doc["paths"].values() for op in ops.values()}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for response in op["responses"].values():
                for link in response.get("links", {}).values():
                    assert link["operationId"] in operation_ids, (path, link)


async def test_a_path_id_is_ascii_digits(admin):
    """The document says an id is an integer; `١` (ARABIC-INDIC DIGIT ONE) is not user 1."""
    assert (await admin.get(f"/users/{admin.user['id']}")).status == 200
    other_digits = str(admin.user["id"]).translate(str.maketrans("0123456789",
                                                                 "٠١٢٣٤٥٦٧٨٩"))
    answer = await admin.get(f"/users/{other_digits}")
    assert answer.status == 404, answer.body
