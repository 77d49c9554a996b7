"""Price zones (issue 20.1): a studio's seats in named zones, a show's price per zone, the seat
map for sale with each seat's zone and price, a hold's total the sum of its seats' prices."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime, timedelta

from tests.test_sales import hold

_n = itertools.count()


async def zoned_studio(manager, rows: int = 4, cols: int = 5) -> dict:
    """Rows 1-2 "Stalls", row 4 "Balcony", row 3 no zone; (1, 3) an aisle."""
    studio = await manager.post("/studios", {"name": f"Zone studio {os.getpid()}_{next(_n)}",
                                             "rows": rows, "cols": cols})
    assert studio.status == 201, studio.body
    places = ([{"row": r, "col": c, "kind": "seat", "zone": "Stalls"}
               for r in (1, 2) for c in range(1, cols + 1) if (r, c) != (1, 3)]
              + [{"row": 1, "col": 3, "kind": "aisle"}]
              + [{"row": 4, "col": c, "kind": "seat", "zone": "Balcony"}
                 for c in range(1, cols + 1)])
    edit = await manager.patch(f"/studios/{studio.body['id']}/seats", {"seats": places})
    assert edit.status == 200, edit.body
    return studio.body


async def zoned_show(manager, studio: dict, prices: dict | None, price: int = 5000) -> dict:
    starts_at = datetime.now(UTC) + timedelta(days=2)
    today = starts_at.date()
    play = await manager.post("/plays", {
        "name": f"Zone play {os.getpid()}_{next(_n)}", "kind": "opera", "rating": "all",
        "duration_minutes": 120, "starts_on": str(today - timedelta(days=1)),
        "ends_on": str(today + timedelta(days=30)), "price": price})
    assert play.status == 201, play.body
    body = {"play_id": play.body["id"], "studio_id": studio["id"],
            "starts_at": starts_at.isoformat()}
    if prices is not None:
        body["prices"] = prices
    show = await manager.post("/schedules", body)
    assert show.status == 201, show.body
    return show.body


async def test_seat_zones_are_set_cleared_and_kept_in_bulk(api, manager):
    studio = await zoned_studio(manager)
    path = f"/studios/{studio['id']}/seats"
    places = {(s["row"], s["col"]): s for s in (await manager.get(path)).body["seats"]}
    assert places[(1, 1)] == {"row": 1, "col": 1, "kind": "seat", "zone": "Stalls"}
    assert places[(4, 5)]["zone"] == "Balcony"
    assert "zone" not in places[(3, 1)]  # listed only when set
    assert places[(1, 3)] == {"row": 1, "col": 3, "kind": "aisle"}
    # null clears; a place without `zone` keeps its own
    edit = await manager.patch(path, {"seats": [{"row": 1, "col": 1, "kind": "seat",
                                                 "zone": None},
                                                {"row": 2, "col": 1, "kind": "broken"}]})
    assert edit.status == 200, edit.body
    places = {(s["row"], s["col"]): s for s in edit.body["seats"]}
    assert "zone" not in places[(1, 1)]
    assert places[(2, 1)] == {"row": 2, "col": 1, "kind": "broken", "zone": "Stalls"}
    for bad in ("", " ", "x" * 41, 7):
        refused = await manager.patch(path, {"seats": [{"row": 1, "col": 1, "kind": "seat",
                                                        "zone": bad}]})
        assert refused.status == 422 and refused.code == "validation_error", refused.body


async def test_a_show_prices_its_zones_and_a_hold_costs_the_sum(api, manager, customer):
    studio = await zoned_studio(manager)
    show = await zoned_show(manager, studio, {"Stalls": 8000, "Balcony": 3000}, price=5000)
    assert show["prices"] == {"Stalls": 8000, "Balcony": 3000}
    # the hold right after the show is made (the snapshot may still be on its way)
    held = await hold(customer, show, (1, 1), (3, 2), (4, 4))
    assert held.status == 201, held.body
    assert held.body["seats"] == [{"row": 1, "col": 1, "price": 8000},
                                  {"row": 3, "col": 2, "price": 5000},
                                  {"row": 4, "col": 4, "price": 3000}]
    assert held.body["total"] == 16000
    seat_map = await api.get(f"/schedules/{show['id']}/seats")
    assert seat_map.status == 200, seat_map.body
    by_seat = {(s["row"], s["col"]): s for s in seat_map.body["seats"]}
    assert by_seat[(2, 2)] == {"row": 2, "col": 2, "status": "available", "price": 8000,
                               "zone": "Stalls"}
    assert by_seat[(3, 3)] == {"row": 3, "col": 3, "status": "available", "price": 5000,
                               "zone": None}
    assert by_seat[(4, 1)]["price"] == 3000 and by_seat[(4, 1)]["zone"] == "Balcony"
    assert by_seat[(1, 3)]["status"] == "unavailable"
    paid = await customer.post(f"/reservations/{held.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    assert sorted(t["price"] for t in paid.body["tickets"]) == [3000, 5000, 8000]
    # prices cannot change once seats are held or sold
    late = await manager.patch(f"/schedules/{show['id']}", {"prices": {"Stalls": 1}})
    assert late.status == 409 and late.code == "conflict", late.body


async def test_a_zone_without_a_price_costs_the_shows_price(api, manager, customer):
    studio = await zoned_studio(manager)
    show = await zoned_show(manager, studio, {"Balcony": 2500}, price=4000)
    held = await hold(customer, show, (2, 2), (4, 2))
    assert held.status == 201, held.body
    assert [s["price"] for s in held.body["seats"]] == [4000, 2500]
    assert held.body["total"] == 6500


async def test_show_prices_change_before_sales_and_null_clears_them(api, manager, customer):
    studio = await zoned_studio(manager)
    show = await zoned_show(manager, studio, None, price=4000)
    assert show["prices"] == {}
    # the seat map for sale is read (and the show known to ticket_svc) before the change
    assert (await api.get(f"/schedules/{show['id']}/seats")).status == 200
    edited = await manager.patch(f"/schedules/{show['id']}", {"prices": {"Stalls": 9000}})
    assert edited.status == 200 and edited.body["prices"] == {"Stalls": 9000}, edited.body
    held = await hold(customer, show, (1, 1), (4, 1))
    assert held.status == 201, held.body
    assert [s["price"] for s in held.body["seats"]] == [9000, 4000]
    other = await zoned_show(manager, await zoned_studio(manager), {"Stalls": 1}, price=10)
    cleared = await manager.patch(f"/schedules/{other['id']}", {"prices": None})
    assert cleared.status == 200 and cleared.body["prices"] == {}
    bad = await manager.patch(f"/schedules/{other['id']}", {"prices": {"Stalls": -1}})
    assert bad.status == 422 and bad.code == "validation_error"
