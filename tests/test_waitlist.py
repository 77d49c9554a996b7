"""The waiting list (issue 20.4): strictly first come, first served, with many joiners and
seats coming back by refund, cancellation and expiry."""

from __future__ import annotations

import orjson
from sqlalchemy import text

from tests.catalogue import make_show
from tests.conftest import service_database
from tests.test_limits import capped_show
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


async def _bought(client, show, *pairs) -> list[dict]:
    held = await hold(client, show, *pairs)
    assert held.status == 201, held.body
    paid = await client.post(f"/reservations/{held.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    return paid.body["tickets"]


async def test_an_offer_counts_toward_the_cap_and_joining_past_it_is_refused(manager, new_user):
    """A show caps tickets per account at 1. An offer is a hold: it counts (no second seat
    while it stands) and gives its seat back when cancelled. Before, an offer was never counted
    but its end gave a seat back, so an account could pass the cap."""
    show = await capped_show(manager, 1, rows=1, cols=2)
    a, b, d = await new_user(), await new_user(), await new_user()
    [a_ticket] = await _bought(a, show, (1, 1))
    [b_ticket] = await _bought(b, show, (1, 2))
    full = await a.post(f"/schedules/{show['id']}/waitlist", {"quantity": 1})
    assert full.status == 409 and full.code == "limit_reached", full.body
    assert full.body["errors"][0]["loc"] == ["body", "quantity"]
    assert (await d.post(f"/schedules/{show['id']}/waitlist", {"quantity": 1})).status == 201
    assert (await b.post(f"/tickets/{b_ticket['id']}/refund")).status == 200

    async def offered():
        entry = await _entry(d, show)
        return entry if entry["status"] == "offered" else None
    offer = await wait_for(offered, timeout=15)
    assert (await a.post(f"/tickets/{a_ticket['id']}/refund")).status == 200  # (1, 1) is free
    over = await hold(d, show, (1, 1))
    assert over.status == 409 and over.code == "limit_reached", over.body
    cancelled = await d.delete(f"/reservations/{offer['reservation_id']}")
    assert cancelled.status == 204, cancelled.body
    assert (await hold(d, show, (1, 1))).status == 201  # the cancelled offer gave its seat back

    async def one_more_refused():
        answer = await hold(d, show, (1, 2))  # (1, 2) is free again once the offer ended
        return answer if answer.code != "seat_unavailable" else None
    again = await wait_for(one_more_refused, timeout=15)
    assert again.status == 409 and again.code == "limit_reached", again.body


async def test_one_who_bought_up_to_the_cap_since_joining_is_passed_over(manager, new_user):
    show = await capped_show(manager, 3, rows=1, cols=4)
    c, owner, d = await new_user(), await new_user(), await new_user()
    await _bought(c, show, (1, 1))
    tickets = await _bought(owner, show, (1, 2), (1, 3), (1, 4))
    assert (await c.post(f"/schedules/{show['id']}/waitlist", {"quantity": 2})).status == 201
    assert (await d.post(f"/schedules/{show['id']}/waitlist", {"quantity": 1})).status == 201
    # One seat back: the first in line wants two, so it stays free, and c buys it.
    assert (await owner.post(f"/tickets/{tickets[0]['id']}/refund")).status == 200

    async def bought_it():
        answer = await hold(c, show, (1, 2))
        return answer if answer.status == 201 else None
    held = await wait_for(bought_it, timeout=15)
    assert (await c.post(f"/reservations/{held.body['id']}/pay", {})).status == 200
    # Two back: c (2 tickets, cap 3) cannot take two more, so d is served instead.
    for ticket in tickets[1:]:
        assert (await owner.post(f"/tickets/{ticket['id']}/refund")).status == 200

    async def served():
        return await _offered([c, d], show) == [0, 1] or None
    await wait_for(served, timeout=15)
    assert (await _entry(c, show))["status"] == "passed"
    offer = await _entry(d, show)
    assert offer["status"] == "offered"
    assert len((await d.get(f"/reservations/{offer['reservation_id']}")).body["seats"]) == 1


async def test_seats_back_with_no_offer_made_are_offered_within_a_sweep(manager, new_user):
    """The offer runs after the release's commit: a ticket_svc that dies between the two
    leaves seats available and the line waiting. Made here by freeing a hold's seat in the
    database, with no event; the line is served within a sweep interval (1 s here), not at
    the next seat to come back."""
    show = await make_show(manager, rows=1, cols=1)
    owner, waiting = await new_user(), await new_user()
    held = await hold(owner, show, (1, 1))
    assert held.status == 201, held.body
    assert (await waiting.post(f"/schedules/{show['id']}/waitlist",
                               {"quantity": 1})).status == 201
    async with service_database("ticket") as db, db.transaction() as tx:
        await tx.execute(text("UPDATE reservations SET status = 'cancelled' WHERE id = :rid"),
                         {"rid": held.body["id"]})
        await tx.execute(text("UPDATE seats SET status = 'available', reservation_id = NULL "
                              "WHERE schedule_id = :sid"), {"sid": show["id"]})

    async def offered():
        entry = await _entry(waiting, show)
        return entry if entry["status"] == "offered" else None
    offer = await wait_for(offered, timeout=15)
    seats = (await waiting.get(f"/reservations/{offer['reservation_id']}")).body["seats"]
    assert [(s["row"], s["col"]) for s in seats] == [(1, 1)]


async def test_the_box_office_puts_a_customer_in_line_and_reads_their_entries(
        manager, clerk, admin, new_user):
    """A customer at the window of a sold-out show: the clerk puts their account in line
    (``customer_id``), reads their entries (``?user_id=``), and the offer, when seats come
    back, is held on their account. Only staff may name another account."""
    show = await make_show(manager, rows=1, cols=1)
    owner, walk_in, nosy = await new_user(), await new_user(), await new_user()
    [ticket] = await _bought(owner, show, (1, 1))
    queued = await clerk.post(f"/schedules/{show['id']}/waitlist",
                              {"quantity": 1, "customer_id": walk_in.user["id"]})
    assert queued.status == 201, queued.body
    assert (queued.body["user_id"], queued.body["position"]) == (walk_in.user["id"], 1)
    assert (await _entry(walk_in, show))["id"] == queued.body["id"]  # theirs, not the clerk's
    assert not (await clerk.get("/waitlist")).body["items"]
    listed = await clerk.get(f"/waitlist?user_id={walk_in.user['id']}")
    assert [e["id"] for e in listed.body["items"]] == [queued.body["id"]], listed.body
    again = await clerk.post(f"/schedules/{show['id']}/waitlist",
                             {"quantity": 1, "customer_id": walk_in.user["id"]})
    assert again.status == 409 and again.code == "conflict", again.body

    for answer in (await nosy.post(f"/schedules/{show['id']}/waitlist",
                                   {"quantity": 1, "customer_id": walk_in.user["id"]}),
                   await nosy.get(f"/waitlist?user_id={walk_in.user['id']}")):
        assert answer.status == 403 and answer.code == "forbidden", answer.body
    assert (await walk_in.get(f"/waitlist?user_id={walk_in.user['id']}")).status == 200
    disabled = await new_user()
    assert (await admin.patch(f"/users/{disabled.user['id']}", {"disabled": True})
            ).status == 200
    refused = await clerk.post(f"/schedules/{show['id']}/waitlist",
                               {"quantity": 1, "customer_id": disabled.user["id"]})
    assert refused.status == 422 and refused.body["errors"][0]["type"] == "customer_inactive"

    assert (await owner.post(f"/tickets/{ticket['id']}/refund")).status == 200

    async def offered():
        entry = await _entry(walk_in, show)
        return entry if entry["status"] == "offered" else None
    offer = await wait_for(offered, timeout=15)
    held = await clerk.get(f"/reservations/{offer['reservation_id']}")
    assert held.body["user_id"] == walk_in.user["id"] and held.body["status"] == "held"
    paid = await clerk.post(f"/reservations/{offer['reservation_id']}/pay", {})
    assert paid.status == 200 and paid.body["tickets"][0]["user_id"] == walk_in.user["id"]


async def test_leaving_the_line_moves_those_behind_up_and_is_never_offered_seats(
        manager, clerk, new_user):
    show = await make_show(manager, rows=1, cols=1)
    owner = await new_user()
    first, second, third = await new_user(), await new_user(), await new_user()
    [ticket] = await _bought(owner, show, (1, 1))
    entries = []
    for client in (first, second, third):
        joined = await client.post(f"/schedules/{show['id']}/waitlist", {"quantity": 1})
        assert joined.status == 201, joined.body
        entries.append(joined.body)
    assert (await third.delete(f"/waitlist/{entries[0]['id']}")).status == 403  # not theirs
    left = await first.delete(f"/waitlist/{entries[0]['id']}")
    assert left.status == 200 and left.body["status"] == "left", left.body
    assert left.body["position"] is None
    assert (await first.delete(f"/waitlist/{entries[0]['id']}")).body["status"] == "left"
    assert (await _entry(second, show))["position"] == 1
    by_clerk = await clerk.delete(f"/waitlist/{entries[2]['id']}")  # for the customer
    assert by_clerk.status == 200 and by_clerk.body["status"] == "left", by_clerk.body
    assert (await clerk.delete("/waitlist/999999999")).status == 404
    # The seat comes back: the one still in line is offered it, not those who left.
    assert (await owner.post(f"/tickets/{ticket['id']}/refund")).status == 200

    async def offered():
        entry = await _entry(second, show)
        return entry if entry["status"] == "offered" else None
    offer = await wait_for(offered, timeout=15)
    assert [(await _entry(c, show))["status"] for c in (first, third)] == ["left", "left"]
    too_late = await second.delete(f"/waitlist/{offer['id']}")
    assert too_late.status == 409 and too_late.code == "conflict", too_late.body
    assert "cancel that hold" in too_late.body["detail"]
