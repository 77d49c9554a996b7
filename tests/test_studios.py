"""Studios and seat maps through the gateway: HTTP → gateway → RabbitMQ → studio_svc."""

from __future__ import annotations

from tests.catalogue import (
    at,
    listening,
    make_play,
    make_schedule,
    make_studio,
    unique,
)
from tests.waiting import eventually


async def test_new_studio_has_every_place_a_seat(manager, customer):
    answer = await manager.post("/studios", {"name": unique("Main hall"), "rows": 3, "cols": 4,
                                             "description": "ground floor"})
    assert answer.status == 201, answer.body
    studio = answer.body
    assert studio["rows"] == 3 and studio["cols"] == 4 and studio["seat_count"] == 12
    assert studio["description"] == "ground floor" and studio["created_at"].endswith("Z")
    assert (await customer.get(f"/studios/{studio['id']}")).body == studio
    seats = await customer.get(f"/studios/{studio['id']}/seats")
    assert seats.status == 200
    assert seats.body["studio_id"] == studio["id"]
    assert (seats.body["rows"], seats.body["cols"]) == (3, 4)
    assert seats.body["seats"] == [{"row": r, "col": c, "kind": "seat"}
                                   for r in range(1, 4) for c in range(1, 5)]


async def test_largest_studio_is_100_by_100(manager):
    studio = await make_studio(manager, rows=100, cols=100)
    assert studio["seat_count"] == 10_000
    seats = await manager.get(f"/studios/{studio['id']}/seats")
    assert len(seats.body["seats"]) == 10_000
    assert seats.body["seats"][-1] == {"row": 100, "col": 100, "kind": "seat"}


async def test_rows_and_cols_must_be_1_to_100(manager):
    for rows, cols in ((0, 5), (5, 0), (101, 5), (5, 101), (-1, 5)):
        answer = await manager.post("/studios", {"name": unique("S"), "rows": rows,
                                                 "cols": cols})
        assert answer.status == 422 and answer.code == "validation_error", (rows, cols)
    answer = await manager.post("/studios", {"name": "", "rows": "x", "cols": 5})
    locs = {tuple(e["loc"]) for e in answer.body["errors"]}
    assert answer.status == 422 and {("body", "name"), ("body", "rows")} <= locs
    missing = await manager.post("/studios", {"rows": 5, "cols": 5})
    assert missing.status == 422 and missing.body["errors"][0]["loc"] == ["body", "name"]
    unknown = await manager.post("/studios", {"name": unique("S"), "rows": 5, "cols": 5,
                                              "seats": []})
    assert unknown.status == 422 and unknown.body["errors"][0]["loc"] == ["body", "seats"]
    studio = await make_studio(manager)
    assert (await manager.patch(f"/studios/{studio['id']}", {"rows": 0})).status == 422
    assert (await manager.patch(f"/studios/{studio['id']}", {"name": None})).status == 422


async def test_studio_names_are_unique(manager):
    first = await make_studio(manager)
    again = await manager.post("/studios", {"name": first["name"], "rows": 2, "cols": 2})
    assert again.status == 409 and again.code == "conflict"
    second = await make_studio(manager)
    rename = await manager.patch(f"/studios/{second['id']}", {"name": first["name"]})
    assert rename.status == 409 and rename.code == "conflict"


async def test_reads_need_a_signed_in_user_and_writes_a_manager(api, customer, clerk, admin,
                                                                manager):
    studio = await make_studio(manager)
    path = f"/studios/{studio['id']}"
    for anonymous in (api.get("/studios"), api.get(path), api.get(path + "/seats")):
        answer = await anonymous
        assert answer.status == 401 and answer.code == "unauthorized"
    for reader in (customer, clerk):
        assert (await reader.get("/studios")).status == 200
        assert (await reader.get(path)).status == 200
        assert (await reader.get(path + "/seats")).status == 200
        for write in (reader.post("/studios", {"name": unique("S"), "rows": 1, "cols": 1}),
                      reader.patch(path, {"name": unique("S")}),
                      reader.patch(path + "/seats", {"seats": [{"row": 1, "col": 1,
                                                                "kind": "aisle"}]}),
                      reader.delete(path)):
            answer = await write
            assert answer.status == 403 and answer.code == "forbidden"
    assert (await api.post("/studios", {"name": unique("S"), "rows": 1, "cols": 1})).status \
        == 401
    # admin includes manager
    made = await admin.post("/studios", {"name": unique("S"), "rows": 1, "cols": 1})
    assert made.status == 201
    assert (await admin.delete(f"/studios/{made.body['id']}")).status == 204


async def test_missing_studio_is_404(manager):
    for answer in (await manager.get("/studios/999999999"),
                   await manager.get("/studios/999999999/seats"),
                   await manager.patch("/studios/999999999", {"name": unique("S")}),
                   await manager.patch("/studios/999999999/seats",
                                       {"seats": [{"row": 1, "col": 1, "kind": "aisle"}]}),
                   await manager.delete("/studios/999999999")):
        assert answer.status == 404 and answer.code == "not_found"


async def test_bulk_seat_edit_changes_kinds_and_seat_count(manager):
    studio = await make_studio(manager, rows=4, cols=5)
    path = f"/studios/{studio['id']}/seats"
    answer = await manager.patch(path, {"seats": [
        {"row": 1, "col": 3, "kind": "aisle"}, {"row": 2, "col": 3, "kind": "aisle"},
        {"row": 4, "col": 5, "kind": "broken"}]})
    assert answer.status == 200, answer.body
    kinds = {(s["row"], s["col"]): s["kind"] for s in answer.body["seats"]}
    assert len(kinds) == 20
    assert kinds[(1, 3)] == kinds[(2, 3)] == "aisle" and kinds[(4, 5)] == "broken"
    assert sum(k == "seat" for k in kinds.values()) == 17
    assert (await manager.get(f"/studios/{studio['id']}")).body["seat_count"] == 17
    back = await manager.patch(path, {"seats": [{"row": 4, "col": 5, "kind": "seat"},
                                                {"row": 1, "col": 3, "kind": "broken"}]})
    kinds = {(s["row"], s["col"]): s["kind"] for s in back.body["seats"]}
    assert kinds[(4, 5)] == "seat" and kinds[(1, 3)] == "broken"
    assert (await manager.get(f"/studios/{studio['id']}")).body["seat_count"] == 18


async def test_bulk_seat_edit_is_checked_against_the_map(manager):
    studio = await make_studio(manager, rows=4, cols=5)
    path = f"/studios/{studio['id']}/seats"
    outside = await manager.patch(path, {"seats": [{"row": 1, "col": 1, "kind": "aisle"},
                                                   {"row": 5, "col": 1, "kind": "aisle"},
                                                   {"row": 1, "col": 6, "kind": "broken"}]})
    assert outside.status == 422 and outside.code == "validation_error"
    assert [e["loc"] for e in outside.body["errors"]] == [["body", "seats", 1],
                                                          ["body", "seats", 2]]
    twice = await manager.patch(path, {"seats": [{"row": 1, "col": 1, "kind": "aisle"},
                                                 {"row": 1, "col": 1, "kind": "seat"}]})
    assert twice.status == 422
    for bad in ({"seats": []}, {"seats": [{"row": 1, "col": 1, "kind": "stage"}]},
                {"seats": [{"row": 0, "col": 1, "kind": "aisle"}]},
                {"seats": [{"row": 1, "col": 101, "kind": "aisle"}]},
                {"seats": [{"row": 1, "col": 1}]}, {}):
        answer = await manager.patch(path, bad)
        assert answer.status == 422 and answer.code == "validation_error", bad
    # nothing changed by the refused edits
    assert (await manager.get(f"/studios/{studio['id']}")).body["seat_count"] == 20


async def test_list_search_and_paging(manager, customer):
    tag = unique("Hall").split()[1]
    made = [await make_studio(manager, rows=2, cols=2) for _ in range(3)]
    for i, studio in enumerate(made):
        answer = await manager.patch(f"/studios/{studio['id']}", {"name": f"Hall {tag} {i}"})
        assert answer.status == 200
    page = await customer.get("/studios", params={"q": tag, "page_size": 2})
    assert page.status == 200 and page.body["total"] == 3 and page.body["page_size"] == 2
    assert [s["name"] for s in page.body["items"]] == [f"Hall {tag} 0", f"Hall {tag} 1"]
    second = await customer.get("/studios", params={"q": tag, "page_size": 2, "page": 2})
    assert [s["name"] for s in second.body["items"]] == [f"Hall {tag} 2"]
    assert (await customer.get("/studios", params={"page_size": 101})).status == 422
    assert (await customer.get("/studios", params={"page": 0})).status == 422


async def test_rename_describe_and_resize_without_shows(manager, system):
    studio = await make_studio(manager, rows=4, cols=4)
    await manager.patch(f"/studios/{studio['id']}/seats", {"seats": [
        {"row": 1, "col": 1, "kind": "aisle"}, {"row": 4, "col": 4, "kind": "broken"}]})
    async with listening(system, "studio.*") as events:
        name = unique("Renamed")
        answer = await manager.patch(f"/studios/{studio['id']}", {
            "name": name, "description": "new", "rows": 3, "cols": 6})
        assert answer.status == 200, answer.body
        body = answer.body
        assert (body["name"], body["description"], body["rows"], body["cols"]) == \
            (name, "new", 3, 6)
        # (4, 4) fell off the map; (1, 1) is still an aisle
        assert body["seat_count"] == 17
        updated = await events.wait_for(lambda e: e["type"] == "studio.updated"
                                        and e["data"]["studio"]["id"] == studio["id"])
        assert updated["data"]["studio"] == body and updated["producer"] == "studio"
    seats = (await manager.get(f"/studios/{studio['id']}/seats")).body["seats"]
    assert len(seats) == 18 and seats[0] == {"row": 1, "col": 1, "kind": "aisle"}
    same = await manager.patch(f"/studios/{studio['id']}", {})
    assert same.status == 200 and same.body == body
    cleared = await manager.patch(f"/studios/{studio['id']}", {"description": None})
    assert cleared.body["description"] is None


async def test_studio_events_are_published(manager, system):
    async with listening(system, "studio.*") as events:
        studio = await make_studio(manager)
        created = await events.wait_for(lambda e: e["type"] == "studio.created"
                                        and e["data"]["studio"]["id"] == studio["id"])
        assert created["data"]["studio"] == studio
        assert (await manager.delete(f"/studios/{studio['id']}")).status == 204
        deleted = await events.wait_for(lambda e: e["type"] == "studio.deleted"
                                        and e["data"]["studio_id"] == studio["id"])
        assert deleted["data"] == {"studio_id": studio["id"]}
    assert (await manager.get(f"/studios/{studio['id']}")).status == 404
    # its name is free again
    again = await manager.post("/studios", {"name": studio["name"], "rows": 1, "cols": 1})
    assert again.status == 201


async def test_resize_and_delete_refused_while_upcoming_shows(manager):
    studio = await make_studio(manager, rows=4, cols=4)
    play = await make_play(manager)
    show = await make_schedule(manager, play, studio, at(days=2))
    path = f"/studios/{studio['id']}"
    for change in ({"rows": 5}, {"cols": 3}, {"rows": 4, "cols": 5}):
        answer = await manager.patch(path, change)
        assert answer.status == 409 and answer.code == "conflict", change
    deleted = await manager.delete(path)
    assert deleted.status == 409 and deleted.code == "conflict"
    # the same size, a new name, or seat kinds are fine
    assert (await manager.patch(path, {"rows": 4, "cols": 4})).status == 200
    assert (await manager.patch(path, {"name": unique("Still open")})).status == 200
    assert (await manager.patch(path + "/seats", {"seats": [
        {"row": 2, "col": 2, "kind": "broken"}]})).status == 200
    assert (await manager.delete(f"/schedules/{show['id']}")).status == 204
    assert (await manager.patch(path, {"rows": 6})).body["rows"] == 6
    assert (await manager.delete(path)).status == 204


async def test_a_studio_with_only_past_shows_can_go(manager):
    studio = await make_studio(manager)
    play = await make_play(manager, duration_minutes=60)
    await make_schedule(manager, play, studio, at(days=-2))
    assert (await manager.patch(f"/studios/{studio['id']}", {"rows": 9})).status == 200
    assert (await manager.delete(f"/studios/{studio['id']}")).status == 204


async def test_show_in_progress_counts_as_upcoming(manager):
    studio = await make_studio(manager)
    play = await make_play(manager, duration_minutes=180)
    await make_schedule(manager, play, studio, at(hours=-1))
    answer = await manager.delete(f"/studios/{studio['id']}")
    assert answer.status == 409 and answer.code == "conflict"
    assert (await manager.get(f"/studios/{studio['id']}")).status == 200


async def test_resize_and_delete_wait_for_play_svc_rather_than_guess(manager, system, api):
    studio = await make_studio(manager)
    system.kill("play_svc")
    try:
        for answer in (await manager.delete(f"/studios/{studio['id']}"),
                       await manager.patch(f"/studios/{studio['id']}", {"rows": 9})):
            assert answer.status == 503 and answer.code == "service_unavailable", answer.body
        assert (await manager.get(f"/studios/{studio['id']}")).body == studio
    finally:
        system.start("play_svc")

    deleted: list[int] = []

    async def back():  # studio_svc and the gateway see play_svc's consumer again in ~1 s
        if not deleted:
            answer = await manager.delete(f"/studios/{studio['id']}")
            assert answer.status != 503, answer.body
            deleted.append(answer.status)
        assert (await api.get("/plays")).status == 200
    await eventually(back, timeout=30)
    assert deleted == [204]
