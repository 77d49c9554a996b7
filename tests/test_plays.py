"""Plays through the gateway: HTTP → gateway → RabbitMQ → play_svc."""

from __future__ import annotations

from datetime import date, timedelta

from tests.catalogue import (
    at,
    listening,
    make_play,
    make_schedule,
    make_studio,
    play_body,
    unique,
)
from tests.test_sales import hold


async def test_create_and_read_a_play_without_a_token(manager, api):
    body = play_body(kind="opera", area="Italy", rating="teen", description="three acts",
                     duration_minutes=195, price=12000)
    answer = await manager.post("/plays", body)
    assert answer.status == 201, answer.body
    play = answer.body
    assert play == {"id": play["id"], **body, "ticket_types": []}
    assert (await api.get(f"/plays/{play['id']}")).body == play
    defaults = await make_play(manager)
    assert defaults["area"] is None and defaults["description"] is None


async def test_play_fields_are_validated(manager):
    today = date.today()
    bad = [
        {"kind": "circus"}, {"rating": "everyone"}, {"duration_minutes": 0},
        {"duration_minutes": 601}, {"price": -1}, {"name": ""}, {"name": "x" * 201},
        {"starts_on": "2025-13-01"}, {"price": "free"},
        {"starts_on": str(today), "ends_on": str(today - timedelta(days=1))},
    ]
    for change in bad:
        answer = await manager.post("/plays", play_body(**change))
        assert answer.status == 422 and answer.code == "validation_error", change
    for field in ("name", "kind", "rating", "duration_minutes", "starts_on", "ends_on",
                  "price"):
        body = play_body()
        del body[field]
        answer = await manager.post("/plays", body)
        assert answer.status == 422 and answer.body["errors"][0]["loc"] == ["body", field]
    unknown = await manager.post("/plays", play_body(director="me"))
    assert unknown.status == 422 and unknown.body["errors"][0]["loc"] == ["body", "director"]
    # edges are fine
    one_day = await manager.post("/plays", play_body(starts_on=str(today), ends_on=str(today),
                                                     duration_minutes=600, price=0))
    assert one_day.status == 201
    assert (await manager.post("/plays", play_body(duration_minutes=1))).status == 201


async def test_writes_need_a_manager(api, customer, clerk, admin, manager):
    play = await make_play(manager)
    path = f"/plays/{play['id']}"
    assert (await api.post("/plays", play_body())).status == 401
    assert (await api.patch(path, {"price": 1})).status == 401
    assert (await api.delete(path)).status == 401
    for user in (customer, clerk):
        for write in (user.post("/plays", play_body()), user.patch(path, {"price": 1}),
                      user.delete(path)):
            answer = await write
            assert answer.status == 403 and answer.code == "forbidden"
    made = await admin.post("/plays", play_body())
    assert made.status == 201
    assert (await admin.patch(f"/plays/{made.body['id']}", {"price": 1})).status == 200
    assert (await admin.delete(f"/plays/{made.body['id']}")).status == 204


async def test_list_search_kind_and_paging(api, manager):
    tag = unique("x").split()[1]
    names = [f"The {tag} Nutcracker", f"{tag} Swan Lake", f"Concert for {tag}"]
    await make_play(manager, name=names[0], kind="opera")
    await make_play(manager, name=names[1], kind="opera")
    await make_play(manager, name=names[2], kind="concert")
    everything = await api.get("/plays", params={"q": tag})
    assert everything.status == 200 and everything.body["total"] == 3
    assert [p["name"] for p in everything.body["items"]] == names
    operas = await api.get("/plays", params={"q": tag, "kind": "opera"})
    assert [p["name"] for p in operas.body["items"]] == names[:2]
    narrow = await api.get("/plays", params={"q": f"{tag} swan"})
    assert [p["name"] for p in narrow.body["items"]] == [names[1]]
    paged = await api.get("/plays", params={"q": tag, "page": 2, "page_size": 2})
    assert paged.body["total"] == 3 and [p["name"] for p in paged.body["items"]] == [names[2]]
    assert paged.body["page"] == 2 and paged.body["page_size"] == 2
    # LIKE wildcards in q are plain characters
    assert (await api.get("/plays", params={"q": f"{tag}%"})).body["total"] == 0
    assert (await api.get("/plays", params={"kind": "circus"})).status == 422
    assert (await api.get("/plays", params={"page_size": 0})).status == 422


async def test_edit_a_play(manager, api, system):
    play = await make_play(manager)
    path = f"/plays/{play['id']}"
    async with listening(system, "play.*") as events:
        answer = await manager.patch(path, {"price": 5000, "area": "Beijing", "kind": "movie"})
        assert answer.status == 200, answer.body
        assert answer.body == {**play, "price": 5000, "area": "Beijing", "kind": "movie"}
        updated = await events.wait_for(lambda e: e["type"] == "play.updated"
                                        and e["data"]["play"]["id"] == play["id"])
        assert updated["data"]["play"] == answer.body
    assert (await api.get(path)).body == answer.body
    assert (await manager.patch(path, {})).body == answer.body
    later = str(date.fromisoformat(play["ends_on"]) + timedelta(days=1))
    bad_run = await manager.patch(path, {"starts_on": later})
    assert bad_run.status == 422 and bad_run.body["errors"][0]["loc"] == ["body", "starts_on"]
    earlier = str(date.fromisoformat(play["starts_on"]) - timedelta(days=1))
    assert (await manager.patch(path, {"ends_on": earlier})).status == 422
    for change in ({"name": None}, {"price": None}, {"duration_minutes": 601},
                   {"rating": "x"}, {"id": 5}):
        answer = await manager.patch(path, change)
        assert answer.status == 422 and answer.code == "validation_error", change
    assert (await manager.patch(path, {"area": None})).body["area"] is None
    missing = await manager.patch("/plays/999999999", {"price": 1})
    assert missing.status == 404 and missing.code == "not_found"


async def test_renaming_a_play_renames_its_shows(manager, api):
    play = await make_play(manager)
    studio = await make_studio(manager)
    show = await make_schedule(manager, play, studio, at(days=3))
    assert show["play_name"] == play["name"]
    name = unique("Renamed play")
    assert (await manager.patch(f"/plays/{play['id']}", {"name": name})).status == 200
    assert (await api.get(f"/schedules/{show['id']}")).body["play_name"] == name
    listed = await api.get("/schedules", params={"play_id": play["id"]})
    assert [s["play_name"] for s in listed.body["items"]] == [name]


async def test_missing_play_is_404(api, manager):
    for answer in (await api.get("/plays/999999999"), await manager.delete("/plays/999999999")):
        assert answer.status == 404 and answer.code == "not_found"


async def test_delete_a_play_without_shows(manager, api, system):
    play = await make_play(manager)
    async with listening(system, "play.*") as events:
        assert (await manager.delete(f"/plays/{play['id']}")).status == 204
        await events.wait_for(lambda e: e["type"] == "play.deleted"
                              and e["data"] == {"play_id": play["id"]})
    assert (await api.get(f"/plays/{play['id']}")).status == 404
    assert (await manager.delete(f"/plays/{play['id']}")).status == 404
    assert play["id"] not in {p["id"] for p in (await api.get(
        "/plays", params={"q": play["name"]})).body["items"]}


async def test_delete_a_play_cancels_its_upcoming_shows_without_sales(manager, api, system):
    play = await make_play(manager, duration_minutes=60)
    studio = await make_studio(manager)
    past = await make_schedule(manager, play, studio, at(days=-1))
    upcoming = [await make_schedule(manager, play, studio, at(days=d)) for d in (1, 2)]
    async with listening(system, "schedule.cancelled") as events:
        assert (await manager.delete(f"/plays/{play['id']}")).status == 204
        for show in upcoming:
            cancelled = await events.wait_for(
                lambda e, show=show: e["data"]["schedule"]["id"] == show["id"])
            assert cancelled["data"]["schedule"] == {**show, "status": "cancelled"}
    statuses = {s["id"]: s["status"] for s in (await api.get(
        "/schedules", params={"play_id": play["id"]})).body["items"]}
    assert statuses == {past["id"]: "scheduled", upcoming[0]["id"]: "cancelled",
                        upcoming[1]["id"]: "cancelled"}
    # a deleted play gets no new shows
    again = await manager.post("/schedules", {"play_id": play["id"], "studio_id": studio["id"],
                                              "starts_at": upcoming[0]["starts_at"]})
    assert again.status == 404


async def test_delete_a_play_refused_while_an_upcoming_show_has_tickets_sold(
        manager, customer, api):
    play = await make_play(manager)
    studio = await make_studio(manager, rows=2, cols=2)
    show = await make_schedule(manager, play, studio, at(days=2))
    held = await hold(customer, show, (1, 1))
    assert held.status == 201, held.body
    paid = await customer.post(f"/reservations/{held.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    answer = await manager.delete(f"/plays/{play['id']}")
    assert answer.status == 409 and answer.code == "conflict"
    assert (await api.get(f"/plays/{play['id']}")).status == 200
    assert (await api.get(f"/schedules/{show['id']}")).body["status"] == "scheduled"
    # once the show is cancelled (its tickets refunded), the play can go
    assert (await manager.delete(f"/schedules/{show['id']}")).status == 204
    assert (await manager.delete(f"/plays/{play['id']}")).status == 204


async def test_delete_a_play_with_only_held_seats_releases_them(manager, customer, api):
    play = await make_play(manager)
    studio = await make_studio(manager, rows=2, cols=2)
    show = await make_schedule(manager, play, studio, at(days=2))
    held = await hold(customer, show, (1, 2))
    assert held.status == 201, held.body
    assert (await manager.delete(f"/plays/{play['id']}")).status == 204
    assert (await api.get(f"/schedules/{show['id']}")).body["status"] == "cancelled"
