"""Ticket types (issue 20.2): concessions a play offers, a type per held seat, recorded on the
reservation and on each ticket, and the play's box office by type."""

from __future__ import annotations

from tests.catalogue import make_show
from tests.test_sales import hold, seat_status
from tests.test_zones import zoned_show, zoned_studio
from tests.waiting import wait_for
from ticket_svc.domain import type_price

TYPES = [{"name": "Child", "percent": 50}, {"name": "Student", "percent": 70},
         {"name": "Friends", "amount": 1000}]


async def typed_show(manager, **kw) -> dict:
    show = await make_show(manager, **kw)
    answer = await manager.patch(f"/plays/{show['play_id']}", {"ticket_types": TYPES})
    assert answer.status == 200, answer.body
    assert answer.body["ticket_types"] == [{"name": "Child", "percent": 50, "amount": None},
                                           {"name": "Student", "percent": 70, "amount": None},
                                           {"name": "Friends", "percent": None, "amount": 1000}]
    return show


async def test_a_play_offers_ticket_types_as_data(api, manager):
    show = await make_show(manager)
    play = await api.get(f"/plays/{show['play_id']}")
    assert play.body["ticket_types"] == []
    for bad in ([{"name": "Child"}], [{"name": "Child", "percent": 50, "amount": 10}],
                [{"name": "Child", "percent": 101}], [{"name": "", "amount": 1}],
                [{"name": "A", "amount": 1}, {"name": "A", "percent": 5}], None):
        refused = await manager.patch(f"/plays/{show['play_id']}", {"ticket_types": bad})
        assert refused.status == 422 and refused.code == "validation_error", (bad, refused.body)


async def test_a_hold_names_a_type_per_seat_and_tickets_keep_it(api, manager, customer):
    show = await typed_show(manager, price=4001)
    # the play's types reach ticket_svc by event: wait until a typed hold is priced by them
    async def typed_hold():
        answer = await hold(customer, show, (1, 1))  # full price: no type
        held = await customer.post("/reservations", {"schedule_id": show["id"], "seats": [
            {"row": 2, "col": 1, "type": "Child"}, {"row": 2, "col": 2, "type": "Friends"},
            {"row": 2, "col": 3, "type": "Student"}]})
        await customer.delete(f"/reservations/{answer.body['id']}")
        return held if held.status == 201 else None
    held = await wait_for(typed_hold)
    assert held.body["seats"] == [
        {"row": 2, "col": 1, "price": 2001, "type": "Child"},      # 50%, rounded half up
        {"row": 2, "col": 2, "price": 1000, "type": "Friends"},    # a fixed amount
        {"row": 2, "col": 3, "price": 2801, "type": "Student"}]    # 70%
    assert held.body["total"] == 5802
    paid = await customer.post(f"/reservations/{held.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    assert sorted((t["type"], t["price"]) for t in paid.body["tickets"]) == [
        ("Child", 2001), ("Friends", 1000), ("Student", 2801)]
    mine = await customer.get(f"/tickets?schedule_id={show['id']}")
    assert {t["type"] for t in mine.body["items"]} == {"Child", "Friends", "Student"}
    # a full-price sale, and a refund of the child's ticket
    full = await hold(customer, show, (3, 1))
    assert (await customer.post(f"/reservations/{full.body['id']}/pay", {})).status == 200
    child = next(t for t in paid.body["tickets"] if t["type"] == "Child")
    assert (await customer.post(f"/tickets/{child['id']}/refund")).status == 200

    async def by_type():
        report = await manager.get(f"/box-office/plays/{show['play_id']}")
        lines = {t["type"]: t for t in report.body.get("by_type", [])}
        return lines if sum(t["tickets_sold"] for t in lines.values()) == 4 and \
            lines.get("Child", {}).get("tickets_refunded") == 1 else None
    lines = await wait_for(by_type)
    assert lines[None] == {"type": None, "tickets_sold": 1, "tickets_refunded": 0,
                           "gross": 4001, "refunded": 0, "net": 4001}
    assert lines["Child"] == {"type": "Child", "tickets_sold": 1, "tickets_refunded": 1,
                              "gross": 2001, "refunded": 2001, "net": 0}
    assert lines["Friends"]["net"] == 1000 and lines["Student"]["net"] == 2801


async def test_a_type_the_play_does_not_offer_is_refused(manager, customer):
    show = await typed_show(manager)
    answer = await customer.post("/reservations", {"schedule_id": show["id"], "seats": [
        {"row": 1, "col": 1, "type": "Pensioner"}, {"row": 1, "col": 2}]})
    assert answer.status == 422 and answer.code == "validation_error", answer.body
    assert answer.body["errors"][0]["loc"][:2] == ["body", "seats"]
    # nothing was held
    assert (await hold(customer, show, (1, 1), (1, 2))).status == 201


async def test_a_type_applies_to_the_seats_zone_price(manager, customer):
    studio = await zoned_studio(manager)
    show = await zoned_show(manager, studio, {"Stalls": 8000}, price=5000)
    assert (await manager.patch(f"/plays/{show['play_id']}",
                                {"ticket_types": TYPES})).status == 200

    async def typed():
        held = await customer.post("/reservations", {"schedule_id": show["id"], "seats": [
            {"row": 1, "col": 1, "type": "Child"}]})
        return held if held.status == 201 else None
    held = await wait_for(typed)
    assert held.body["seats"] == [{"row": 1, "col": 1, "price": 4000, "type": "Child"}]


async def test_best_available_holds_every_seat_picked_as_one_type(api, manager, customer):
    show = await typed_show(manager, rows=2, cols=4)

    async def typed():  # the play's types reach ticket_svc by event
        held = await customer.post("/reservations", {"schedule_id": show["id"], "quantity": 2,
                                                     "type": "Child"})
        return held if held.status == 201 else None
    held = await wait_for(typed)
    child = type_price(show["price"], {"percent": 50})
    assert [(s["type"], s["price"]) for s in held.body["seats"]] == [("Child", child)] * 2
    assert held.body["total"] == 2 * child
    unknown = await customer.post("/reservations", {"schedule_id": show["id"], "quantity": 2,
                                                    "type": "Pensioner"})
    assert unknown.status == 422 and unknown.code == "validation_error", unknown.body
    assert unknown.body["errors"][0]["loc"] == ["body", "type"]
    with_seats = await customer.post("/reservations", {"schedule_id": show["id"], "seats": [
        {"row": 2, "col": 1}], "type": "Child"})
    assert with_seats.status == 422 and with_seats.code == "validation_error", with_seats.body
    # Nothing was held by the refusals: the other six seats are still free.
    statuses = await seat_status(api, show)
    assert list(statuses.values()).count("available") == 6, statuses
