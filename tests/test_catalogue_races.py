"""Catalogue races, each run with two processes of every service involved and many attempts
at once: a studio resized or deleted while shows are being created in it, and holds arriving
while a show is being edited. Whatever wins, the catalogue and the sales must agree after."""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime, timedelta

import pytest

from tests.catalogue import at, iso, listening, make_play, make_show, make_studio, rpc
from tests.processes import one_more_process
from tests.test_sales import hold
from tests.waiting import eventually


@asynccontextmanager
async def second_processes(system, *services: str):
    """One more process of each service, consuming from the same command queues."""
    async with AsyncExitStack() as stack:
        for service in services:
            await stack.enter_async_context(one_more_process(system, service))
        yield


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _after(delay: float, request):
    await asyncio.sleep(delay)
    return await request


@pytest.mark.slow
async def test_a_studio_changed_while_shows_are_created_never_disagrees_with_them(
        manager, system, api):
    """Each round creates shows in a fresh studio while the studio is resized (even rounds)
    or deleted (odd rounds), all at once. Afterwards every scheduled show's seat map is its
    studio's, and a deleted studio has no show."""
    play = await make_play(manager, duration_minutes=60)
    rng = random.Random(16)
    changed = created = 0
    async with second_processes(system, "studio_svc", "play_svc"):
        for round_ in range(16):
            studio = await make_studio(manager, rows=4, cols=4)
            path = f"/studios/{studio['id']}"
            day = at(days=3 + round_ % 20)
            creates = [
                _after(rng.uniform(0, 0.06), manager.post("/schedules", {
                    "play_id": play["id"], "studio_id": studio["id"],
                    "starts_at": iso(day + timedelta(hours=2 * i))}))
                for i in range(6)]
            if round_ % 2 == 0:
                change = _after(rng.uniform(0, 0.06),
                                manager.patch(path, {"rows": 5, "cols": 6}))
            else:
                change = _after(rng.uniform(0, 0.06), manager.delete(path))
            *made, answer = await asyncio.gather(*creates, change)
            assert answer.status in (200, 204, 409), answer.body
            assert all(a.status in (201, 404, 409) for a in made), [a.body for a in made]
            changed += answer.status in (200, 204)
            created += sum(a.status == 201 for a in made)
            now = await manager.get(path)
            shows = await api.get("/schedules", params={"studio_id": studio["id"],
                                                        "status": "scheduled"})
            if now.status == 404:
                assert shows.body["total"] == 0, (round_, shows.body["items"])
                continue
            assert now.status == 200
            for show in shows.body["items"]:
                ok, inventory = await rpc(system, "play.schedule_inventory", {"id": show["id"]})
                assert ok, inventory
                assert (inventory["rows"], inventory["cols"]) == (
                    now.body["rows"], now.body["cols"]), (round_, show, now.body)
    # Both outcomes happened: the race was run, not avoided.
    assert changed and created, (changed, created)


@pytest.mark.slow
async def test_holds_during_a_show_edit_are_priced_and_timed_as_the_show_ends_up(
        manager, customer, system, api):
    """Each round moves and re-prices a fresh show while holds of its seats arrive around the
    moment of the edit's sales check. Either the edit is refused (a hold came first) or it
    wins, and then no hold is left at the old price or time."""
    rng = random.Random(5)
    edited = refused = 0
    async with second_processes(system, "play_svc", "ticket_svc"), \
            listening(system, "ticket.held") as events:
        for round_ in range(14):
            show = await make_show(manager, rows=4, cols=6, price=4500)
            # ticket_svc knows the show before the race (its event, or one seat map read)
            assert (await api.get(f"/schedules/{show['id']}/seats")).status == 200
            moved = parse(show["starts_at"]) + timedelta(hours=3)
            offset = rng.uniform(0, 0.04)
            holds = [_after(offset + 0.004 * i, hold(customer, show, (1 + i // 6, 1 + i % 6)))
                     for i in range(24)]
            edit = manager.patch(f"/schedules/{show['id']}",
                                 {"price": 9900, "starts_at": iso(moved)})
            answer, *held = await asyncio.gather(edit, *holds)
            assert answer.status in (200, 409), answer.body
            assert all(h.status == 201 for h in held), [h.body for h in held]
            final = (await api.get(f"/schedules/{show['id']}")).body
            assert (final["price"], parse(final["starts_at"])) == (
                (9900, moved) if answer.status == 200 else (4500, parse(show["starts_at"])))
            prices = sorted({s["price"] for h in held for s in h.body["seats"]})
            assert prices == [final["price"]], (round_, answer.status, prices)
            ids = {h.body["id"] for h in held}
            announced = await eventually(lambda ids=ids: _all_held(events, ids), timeout=15)
            assert {parse(e["data"]["starts_at"]) for e in announced} == {
                parse(final["starts_at"])}, (round_, answer.status)
            edited += answer.status == 200
            refused += answer.status == 409
            for h in held:  # give the seats back
                assert (await customer.delete(f"/reservations/{h.body['id']}")).status == 204
    assert edited and refused, (edited, refused)


async def _all_held(events, ids: set[int]) -> list[dict]:
    found = events.of(lambda e: e["data"]["reservation_id"] in ids)
    assert len({e["data"]["reservation_id"] for e in found}) == len(ids)
    return found


async def test_a_studio_change_allowed_but_never_made_does_not_block_new_shows(
        manager, system):
    """play_svc allowed a resize (as studio_svc asks it) that studio_svc then never made (its
    process died, or the answer came too late). The next show still gets made, from the map
    the studio really has, and the change can no longer slip in behind it."""
    play = await make_play(manager, duration_minutes=60)
    studio = await make_studio(manager, rows=3, cols=3)
    ok, answer = await rpc(system, "play.studio_change", {
        "studio_id": studio["id"], "name": studio["name"], "layout_version": 1})
    assert ok and answer == {"count": 0}, answer
    show = await manager.post("/schedules", {"play_id": play["id"], "studio_id": studio["id"],
                                             "starts_at": iso(at(days=4))})
    assert show.status == 201, show.body
    ok, inventory = await rpc(system, "play.schedule_inventory", {"id": show.body["id"]})
    assert ok and (inventory["rows"], inventory["cols"]) == (3, 3)
    resize = await manager.patch(f"/studios/{studio['id']}", {"rows": 6})
    assert resize.status == 409, resize.body
    assert (await manager.get(f"/studios/{studio['id']}")).body["rows"] == 3


async def test_a_show_edit_allowed_but_never_made_does_not_block_holds(
        manager, customer, system, api):
    """ticket_svc allowed an edit (as play_svc asks it) that play_svc then never made. Holds
    still go through, at the show's real price, and the edit can no longer slip in behind
    them; a new edit after the seats are given back works."""
    show = await make_show(manager, price=4500)
    assert (await api.get(f"/schedules/{show['id']}/seats")).status == 200
    ok, answer = await rpc(system, "ticket.begin_show_edit",
                           {"schedule_id": show["id"], "version": 1})
    assert ok and answer == {"schedule_id": show["id"], "held": 0, "sold": 0}, answer
    held = await hold(customer, show, (1, 1))
    assert held.status == 201, held.body
    assert held.body["total"] == 4500
    refused = await manager.patch(f"/schedules/{show['id']}", {"price": 100})
    assert refused.status == 409 and "held (1)" in refused.body["detail"], refused.body
    assert (await customer.delete(f"/reservations/{held.body['id']}")).status == 204
    edited = await manager.patch(f"/schedules/{show['id']}", {"price": 100})
    assert edited.status == 200, edited.body
    again = await hold(customer, show, (1, 2))
    assert again.status == 201 and again.body["total"] == 100, again.body
