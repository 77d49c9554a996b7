"""The waiting list (issue 20.4): strictly first come, first served, with many joiners and
seats coming back by refund, cancellation and expiry."""

from __future__ import annotations

import orjson

from tests.catalogue import make_show
from tests.test_sales import HOLD_SECONDS, hold
from tests.test_seat_versions import ticket_rows
from tests.waiting import wait_for


async def _entry(client, show: dict) -> dict:
    answer = await client.get("/waitlist?page_size=100")
    assert answer.status == 200, answer.body
    return next(e for e in answer.body["items"] if e["schedule_id"] == show["id"])


async def _offered(clients, show) -> list[int]:
    """Indexes of the clients whose entry for the show has been offered seats, in order."""
    entries = [await _entry(c, show) for c in clients]
    return [i for i, e in enumerate(entries) if e["status"] != "waiting"]


async def test_the_line_is_served_first_come_first_served(manager, new_user):
    show = await make_show(manager, rows=1, cols=3)
    owner = await new_user()
    sale = await hold(owner, show, (1, 1), (1, 2), (1, 3))
    paid = await owner.post(f"/reservations/{sale.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    # an open show has no line: hold the seats instead
    other = await make_show(manager, rows=1, cols=3)
    early = await (await new_user()).post(f"/schedules/{other['id']}/waitlist", {"quantity": 1})
    assert early.status == 409 and early.code == "conflict", early.body

    line = [await new_user() for _ in range(8)]
    for i, client in enumerate(line):
        joined = await client.post(f"/schedules/{show['id']}/waitlist", {"quantity": 1})
        assert joined.status == 201, joined.body
        assert joined.body["status"] == "waiting" and joined.body["position"] == i + 1
    again = await line[0].post(f"/schedules/{show['id']}/waitlist", {"quantity": 1})
    assert again.status == 409 and again.code == "conflict"

    # three refunds, one after another: the first three in line, in order (the offered are
    # always a prefix of the line)
    for n, ticket in enumerate(paid.body["tickets"]):
        assert (await owner.post(f"/tickets/{ticket['id']}/refund")).status == 200

        async def served(n=n):
            offered = await _offered(line, show)
            assert offered == list(range(len(offered))), offered
            return len(offered) > n or None
        await wait_for(served, timeout=15)
    offers = [await _entry(c, show) for c in line[:3]]
    assert all(o["status"] != "waiting" and o["reservation_id"] for o in offers)
    # An offer is a change of the seat map like any hold: its event carries the show's next
    # seat-map version (the gateway applies it instead of taking a fresh snapshot).
    held = [orjson.loads(r.body)["data"] for r in await ticket_rows(
        "SELECT body FROM outbox WHERE routing_key = 'ticket.held'", {})]
    offered = {o["reservation_id"] for o in offers}
    versions = [e["seats_version"] for e in held if e["reservation_id"] in offered]
    assert len(versions) == 3 and all(isinstance(v, int) for v in versions), versions
    # the first pays; the second cancels (its seat goes to the fourth, who pays); the third
    # lets its offer lapse (its seat goes to the fifth, who pays)
    first = await line[0].post(f"/reservations/{offers[0]['reservation_id']}/pay", {})
    assert first.status == 200, first.body
    assert (await line[1].delete(f"/reservations/{offers[1]['reservation_id']}")).status == 204

    async def pays(i: int) -> None:
        async def offered_to_them():
            offered = await _offered(line, show)
            assert offered == list(range(len(offered))), offered
            return await _entry(line[i], show) if i in offered else None
        entry = await wait_for(offered_to_them, timeout=HOLD_SECONDS + 20)
        paid = await line[i].post(f"/reservations/{entry['reservation_id']}/pay", {})
        assert paid.status == 200, paid.body
        assert {t["user_id"] for t in paid.body["tickets"]} == {line[i].user["id"]}
    await pays(3)
    await pays(4)
    statuses = [(await _entry(c, show))["status"] for c in line]
    assert statuses == ["offered", "lapsed", "lapsed", "offered", "offered", "waiting",
                        "waiting", "waiting"]
    assert (await _entry(line[5], show))["position"] == 1


async def test_the_first_in_line_is_not_skipped_for_a_smaller_want(manager, new_user):
    show = await make_show(manager, rows=1, cols=2)
    owner = await new_user()
    sale = await hold(owner, show, (1, 1), (1, 2))
    paid = await owner.post(f"/reservations/{sale.body['id']}/pay", {})
    big, small = await new_user(), await new_user()
    assert (await big.post(f"/schedules/{show['id']}/waitlist", {"quantity": 2})).status == 201
    assert (await small.post(f"/schedules/{show['id']}/waitlist",
                             {"quantity": 1})).status == 201
    assert (await owner.post(f"/tickets/{paid.body['tickets'][0]['id']}/refund")).status == 200
    # one seat back: the first wants two, so nobody is served yet
    for _ in range(10):
        assert await _offered([big, small], show) == []
    assert (await owner.post(f"/tickets/{paid.body['tickets'][1]['id']}/refund")).status == 200

    async def big_served():
        return await _offered([big, small], show) == [0] or None
    await wait_for(big_served, timeout=15)
    offer = await _entry(big, show)
    reservation = await big.get(f"/reservations/{offer['reservation_id']}")
    assert len(reservation.body["seats"]) == 2
