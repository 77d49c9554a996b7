"""Catalogue races, each run with two processes of every service involved and many attempts
at once: a studio resized or deleted while shows are being created in it, and holds arriving
while a show is being edited. Whatever wins, the catalogue and the sales must agree after."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from contextlib import asynccontextmanager
from datetime import timedelta

import aio_pika
import pytest

from tests.catalogue import at, eventually, iso, make_play, make_studio, rpc
from tests.conftest import ROOT
from tests.test_sales import hold, make_show


async def _consumers(system, queue: str) -> int:
    connection = await aio_pika.connect(system.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.consumer_count


@asynccontextmanager
async def second_processes(system, *services: str):
    """One more process of each service, consuming from the same command queues."""
    started = []
    try:
        for service in services:
            queue = system.settings.names.rpc_queue(service.removesuffix("_svc"))
            before = await _consumers(system, queue)
            log = open(system.run_dir / "logs" / f"{service}-race.log", "ab")  # noqa: ASYNC230
            process = subprocess.Popen(  # noqa: ASYNC220 - waited for in the finally
                [sys.executable, "-m", service], cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **system.env},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            started.append((process, log))

            async def consuming(queue=queue, before=before):
                assert await _consumers(system, queue) > before
            await eventually(consuming, within=30)
        yield
    finally:
        for process, log in started:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
            log.close()


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
async def test_holds_during_a_show_edit_are_priced_as_the_show_ends_up(
        manager, customer, system, api):
    """Each round edits a fresh show's price while holds of its seats arrive around the
    moment of the edit's sales check. Either the edit is refused (a hold came first) or it
    wins, and then no hold is left at the old price."""
    rng = random.Random(5)
    edited = refused = 0
    async with second_processes(system, "play_svc", "ticket_svc"):
        for round_ in range(14):
            show = await make_show(manager, rows=4, cols=6, price=4500)
            # ticket_svc knows the show before the race (its event, or one seat map read)
            assert (await api.get(f"/schedules/{show['id']}/seats")).status == 200
            offset = rng.uniform(0, 0.04)
            holds = [_after(offset + 0.004 * i,
                            hold(customer, show, (1 + i // 6, 1 + i % 6)))
                     for i in range(24)]
            edit = manager.patch(f"/schedules/{show['id']}", {"price": 9900})
            answer, *held = await asyncio.gather(edit, *holds)
            assert answer.status in (200, 409), answer.body
            assert all(h.status == 201 for h in held), [h.body for h in held]
            final = (await api.get(f"/schedules/{show['id']}")).body["price"]
            assert final == (9900 if answer.status == 200 else 4500)
            prices = sorted({s["price"] for h in held for s in h.body["seats"]})
            assert prices == [final], (round_, answer.status, prices)
            edited += answer.status == 200
            refused += answer.status == 409
            for h in held:  # give the seats back
                assert (await customer.delete(f"/reservations/{h.body['id']}")).status == 204
    assert edited and refused, (edited, refused)
