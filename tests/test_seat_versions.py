"""Each show's seat-map version (``ticket_svc.versions``), raised in the COMMIT's own round
trip on the hot paths: the server writes it into the events and into an Idempotency-Key's
recorded answer, and the caller reads it after the commit. Checked here in ticket_svc's own
tables of the test system: every change of the show has its own version, one after another,
the events carry them in commit order, and a recorded answer carries its event's version."""

from __future__ import annotations

import asyncio
import os

import orjson
from sqlalchemy import text

from tests.catalogue import make_show
from tests.conftest import service_database
from tests.test_sales import hold


async def ticket_rows(sql: str, params: dict) -> list:
    """Rows of the test system's own ticket database."""
    async with service_database("ticket") as db, db.read() as conn:
        return (await conn.execute(text(sql), params)).all()


async def test_every_change_of_a_show_has_the_next_version_in_its_event_and_answer(
        manager, customer):
    show = await make_show(manager, cols=8)
    key = f"versions-{os.getpid()}-{show['id']}"
    held = await hold(customer, show, (1, 1), (1, 2), headers={"Idempotency-Key": key + "-h"})
    assert held.status == 201, held.body
    paid = await customer.post(f"/reservations/{held.body['id']}/pay", {},
                               headers={"Idempotency-Key": key + "-p"})
    assert paid.status == 200, paid.body
    refunded = await customer.post(f"/tickets/{paid.body['tickets'][0]['id']}/refund")
    assert refunded.status == 200, refunded.body
    # Holds at once on one show: each commits its own version, none twice.
    others = await asyncio.gather(*(hold(customer, show, (3, col)) for col in range(1, 9)))
    assert all(o.status == 201 for o in others), [o.body for o in others]
    cancelled = await customer.delete(f"/reservations/{others[0].body['id']}")
    assert cancelled.status == 204, cancelled.body

    events = [orjson.loads(r.body) for r in await ticket_rows(
        "SELECT body FROM outbox WHERE routing_key LIKE 'ticket.%' ORDER BY id", {})]
    mine = [e for e in events if e["data"].get("schedule_id") == show["id"]
            and "seats_version" in e["data"]]
    kinds = [e["type"] for e in mine]
    assert kinds.count("ticket.held") == 9 and kinds.count("ticket.sold") == 1
    assert kinds.count("ticket.refunded") == 1 and kinds.count("ticket.released") == 1
    versions = [e["data"]["seats_version"] for e in mine]
    # One version each, with no gap: the outbox's order is the commit order.
    assert versions == list(range(versions[0], versions[0] + len(versions))), versions
    [[current]] = await ticket_rows(
        "SELECT version FROM seat_versions WHERE schedule_id = :id", {"id": show["id"]})
    assert current == versions[-1]
    # The recorded answers of the keyed hold and pay carry their events' versions.
    answers = {r.idem_key: orjson.loads(r.answer) for r in await ticket_rows(
        "SELECT idem_key, answer FROM idempotency_keys WHERE idem_key IN (:h, :p)",
        {"h": key + "-h", "p": key + "-p"})}
    by_type = {e["type"]: e["data"]["seats_version"] for e in mine
               if e["data"].get("reservation_id") == held.body["id"]}
    assert answers[key + "-h"]["seats_version"] == by_type["ticket.held"]
    assert answers[key + "-p"]["seats_version"] == by_type["ticket.sold"]
    assert answers[key + "-h"]["id"] == held.body["id"]
