"""Box-office exports (issue 20.5): CSV for the box-office answers (``?format=csv`` or
``Accept: text/csv``), an Excel workbook for a play's report; decimal money with its currency,
UTC times with the offset stated."""

from __future__ import annotations

import csv
import io
import uuid

from openpyxl import load_workbook

from tests.catalogue import make_play, make_show
from tests.test_sales import hold
from tests.waiting import wait_for

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _sold_play(manager, customer) -> dict:
    show = await make_show(manager, price=4550)
    held = await hold(customer, show, (1, 1), (1, 2))
    paid = await customer.post(f"/reservations/{held.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    await customer.post(f"/tickets/{paid.body['tickets'][0]['id']}/refund")

    async def counted():
        answer = await manager.get(f"/box-office/plays/{show['play_id']}")
        return answer.body["tickets_refunded"] == 1 or None
    await wait_for(counted)
    return show


async def _raw(client, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    async with client.session.get(client.base + "/api/v1" + path, headers={
            "Authorization": f"Bearer {client.token}", **(headers or {})}) as response:
        return response.status, dict(response.headers), await response.read()


def _rows(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode())))


async def test_a_plays_report_as_csv_and_as_a_workbook(manager, customer):
    show = await _sold_play(manager, customer)
    path = f"/box-office/plays/{show['play_id']}"
    for query, headers in (("?format=csv", None), ("", {"Accept": "text/csv"})):
        status, head, body = await _raw(manager, path + query, headers)
        assert status == 200 and head["Content-Type"].startswith("text/csv"), (status, body)
        assert "attachment" in head["Content-Disposition"]
        (line,) = _rows(body)
        assert line["schedule_id"] == str(show["id"])
        assert line["starts_at_utc"].endswith("+00:00")
        assert (line["sold"], line["refunded"], line["net"], line["currency"],
                line["checked_in"], line["no_show"]) == ("2", "1", "45.50", "CNY", "0", "")
    for query, headers in (("?format=xlsx", None), ("", {"Accept": XLSX})):
        status, head, body = await _raw(manager, path + query, headers)
        assert status == 200 and head["Content-Type"] == XLSX, (status, body[:200])
        book = load_workbook(io.BytesIO(body))
        assert book.sheetnames == ["Shows", "Play", "Ticket types"]
        play = list(book["Play"].values)
        assert play[0] == ("play_id", "play_name", "tickets_sold", "tickets_refunded", "gross",
                           "refunded", "net", "currency")
        assert play[1][2:] == (2, 1, "91.00", "45.50", "45.50", "CNY")
        shows = list(book["Shows"].values)
        assert shows[1][0] == show["id"] and shows[1][1].endswith("+00:00")
        types = list(book["Ticket types"].values)
        assert types[1][0] == "full price" and types[1][1] == 2
    # JSON stays the default
    assert (await manager.get(path)).body["play_id"] == show["play_id"]


async def test_the_box_office_report_as_csv(manager, customer, clerk):
    show = await _sold_play(manager, customer)
    status, head, body = await _raw(manager, "/box-office?format=csv&group_by=play")
    assert status == 200 and head["Content-Type"].startswith("text/csv")
    lines = {line["key"]: line for line in _rows(body)}
    mine = lines[str(show["play_id"])]
    assert (mine["tickets_sold"], mine["gross"], mine["refunded"], mine["net"],
            mine["currency"], mine["checked_in"], mine["no_show"]) == (
        "2", "91.00", "45.50", "45.50", "CNY", "0", "0")
    # a workbook is only the play's report; an unknown format is refused; staff only
    for query in ("?format=xlsx", "?format=pdf"):
        refused = await manager.get("/box-office" + query)
        assert refused.status == 422 and refused.code == "validation_error", refused.body
    assert (await clerk.get("/box-office?format=csv")).code == "forbidden"
    assert (await clerk.get(f"/box-office/plays/{show['play_id']}?format=xlsx")).code == \
        "forbidden"


async def test_a_name_with_a_control_character_still_makes_a_workbook(manager):
    """A name may hold a control character XML cannot (found by schemathesis: the workbook was
    a 500); the workbook says U+FFFD in its place."""
    play = await make_play(manager, name=f"Bell\x07{uuid.uuid4().hex[:6]}")

    async def workbook():  # 404 until order_svc has the play's event
        status, _, body = await _raw(manager, f"/box-office/plays/{play['id']}?format=xlsx")
        assert status in (200, 404), body[:300]
        return body if status == 200 else None
    body = await wait_for(workbook)
    [(_, name, *_)] = list(load_workbook(io.BytesIO(body))["Play"].values)[1:]
    assert name == play["name"].replace("\x07", "\ufffd")
