"""Best-available holds (issue 14.3): ``{schedule_id, quantity, together}``; ticket_svc picks
(``ticket_svc.best``: the row closest to a third of the way back, then the centre)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson

from tests.catalogue import make_show, rpc
from ticket_svc import best as best_available
from ticket_svc.contention import Background, SeatReads


async def best(client, show: dict, quantity: int, together: bool = True):
    return await client.post("/reservations", {"schedule_id": show["id"],
                                                "quantity": quantity, "together": together})


def places(answer) -> list[tuple[int, int]]:
    return sorted((s["row"], s["col"]) for s in answer.body["seats"])


async def test_the_best_block_is_a_third_back_and_central(manager, customer):
    show = await make_show(manager, rows=7, cols=9)
    first = await best(customer, show, 3)
    assert first.status == 201, first.body
    assert places(first) == [(3, 4), (3, 5), (3, 6)]  # target row 1 + 6/3 = 3, centre col 5
    second = await best(customer, show, 2)
    assert second.status == 201, second.body
    assert places(second) in ([(3, 2), (3, 3)], [(3, 7), (3, 8)])
    alone = await best(customer, show, 4, together=False)
    assert alone.status == 201, alone.body
    assert len(places(alone)) == 4 and set(places(alone)).isdisjoint(
        places(first) + places(second))


async def test_together_never_spans_an_aisle_and_none_left_is_409(manager, customer):
    # one row of 5 with an aisle in the middle: no 3 together, ever
    show = await make_show(manager, rows=1, cols=5, not_seats=((1, 3, "aisle"),))
    refused = await best(customer, show, 3)
    assert refused.status == 409 and refused.code == "seat_unavailable", refused.body
    assert refused.body["errors"] == []
    pair = await best(customer, show, 2)
    assert pair.status == 201 and places(pair) in ([(1, 1), (1, 2)], [(1, 4), (1, 5)])
    apart = await best(customer, show, 2, together=False)
    assert apart.status == 201, apart.body
    assert (await best(customer, show, 1)).status == 409


async def test_seats_or_quantity_exactly_one(manager, customer):
    show = await make_show(manager, rows=2, cols=2)
    both = await customer.post("/reservations", {"schedule_id": show["id"], "quantity": 1,
                                                  "seats": [{"row": 1, "col": 1}]})
    neither = await customer.post("/reservations", {"schedule_id": show["id"]})
    too_many = await best(customer, show, 11)
    assert both.status == neither.status == too_many.status == 422


async def test_fifty_buyers_of_two_together_in_a_ten_by_ten_hall(manager, new_user):
    """No seat held twice, every reservation two adjacent seats, and no refusal while a
    block of two was still free at the end."""
    show = await make_show(manager, rows=10, cols=10)
    buyers = await asyncio.gather(*(new_user() for _ in range(50)))
    answers = await asyncio.gather(*(best(b, show, 2) for b in buyers))
    held = [a for a in answers if a.status == 201]
    refused = [a for a in answers if a.status != 201]
    seats = [k for a in held for k in places(a)]
    assert len(seats) == len(set(seats)), "a seat was held twice"
    for a in held:
        (r1, c1), (r2, c2) = places(a)
        assert r1 == r2 and c2 == c1 + 1, places(a)
    free = {(r, c) for r in range(1, 11) for c in range(1, 11)} - set(seats)
    block_left = any((r, c) in free and (r, c + 1) in free for r, c in free)
    assert not (refused and block_left), [a.body for a in refused]
    assert all(a.status == 409 for a in refused), [a.body for a in refused]


# -- no_single_gaps (issue 14.4) --------------------------------------------------------------

async def gaps_on(manager, show: dict) -> None:
    answer = await manager.patch(f"/schedules/{show['id']}/seat-rules", {"no_single_gaps": True})
    assert answer.status == 200 and answer.body == {"schedule_id": show["id"],
                                                    "no_single_gaps": True}, answer.body


# One row: 1 2 3 | 5 6 7 (an aisle at 4). Each step holds seats in the row as the steps
# before left it: (seats, expected status, the lone seats a refusal names).
GAP_CASES = [
    ([(1, 2)], 409, [(1, 1), (1, 3)]),     # 1 alone at the row's end, 3 alone by the aisle
    ([(1, 1), (1, 2)], 409, [(1, 3)]),     # 3 alone by the aisle
    ([(1, 1), (1, 2), (1, 3)], 201, []),   # that side, whole
    ([(1, 6)], 409, [(1, 5), (1, 7)]),     # 5 alone by the aisle, 7 alone at the end
    ([(1, 5)], 201, []),                   # 6 and 7 stay together; the aisle is no seat
    ([(1, 7)], 409, [(1, 6)]),             # 6 alone between two taken seats
    ([(1, 6)], 409, [(1, 7)]),             # 7 alone at the row's end
    ([(1, 6), (1, 7)], 201, []),           # the last two: nothing is left alone
]

async def test_the_single_gap_rule_refuses_exactly_what_it_should(manager, customer):
    show = await make_show(manager, rows=1, cols=7, not_seats=((1, 4, "aisle"),))
    off = await make_show(manager, rows=1, cols=7, not_seats=((1, 4, "aisle"),))
    await gaps_on(manager, show)
    for keys, status, lone in GAP_CASES:
        answer = await customer.post("/reservations", {
            "schedule_id": show["id"], "seats": [{"row": r, "col": c} for r, c in keys]})
        assert answer.status == status, (keys, answer.body)
        if status == 409:
            assert answer.code == "single_seat_gap", answer.body
            assert [(e["loc"][2]["row"], e["loc"][2]["col"]) for e in answer.body["errors"]] \
                == lone
    # off by default: the first case is held on another show
    first = await customer.post("/reservations", {"schedule_id": off["id"],
                                                  "seats": [{"row": 1, "col": 2}]})
    assert first.status == 201, first.body


async def test_a_show_created_with_the_rule_keeps_it_from_its_first_hold(manager, customer,
                                                                         system):
    """``no_single_gaps`` set as the show is scheduled holds from the first hold, whether
    ticket_svc made the show from ``schedule.created`` or asked play_svc for it (a hold that
    came first). Each show's first hold is sent as soon as it is created."""
    for _ in range(3):
        show = await make_show(manager, rows=1, cols=3, no_single_gaps=True)
        answer = await customer.post("/reservations", {"schedule_id": show["id"],
                                                       "seats": [{"row": 1, "col": 2}]})
        assert answer.status == 409 and answer.code == "single_seat_gap", answer.body
    ok, inventory = await rpc(system, "play.schedule_inventory", {"id": show["id"]})
    assert ok and inventory["no_single_gaps"] is True
    seats = await customer.get(f"/schedules/{show['id']}/seats")
    assert seats.body["no_single_gaps"] is True
    # Once created, the rule is ticket_svc's: a manager turns it off there.
    off = await manager.patch(f"/schedules/{show['id']}/seat-rules", {"no_single_gaps": False})
    assert off.status == 200, off.body
    assert (await customer.post("/reservations", {"schedule_id": show["id"], "seats": [
        {"row": 1, "col": 2}]})).status == 201


async def test_best_available_never_leaves_a_single_seat(manager, customer):
    show = await make_show(manager, rows=1, cols=5)
    await gaps_on(manager, show)
    pair = await best(customer, show, 2)
    assert pair.status == 201, pair.body
    assert places(pair) == [(1, 1), (1, 2)]  # (2, 3) or (3, 4) would leave one seat alone
    plain = await make_show(manager, rows=1, cols=5)
    assert places(await best(customer, plain, 2)) == [(1, 2), (1, 3)]  # without the rule
    # 3-4 would leave 5 alone, 4-5 would leave 3 alone: no pair may be picked now
    refused = await best(customer, show, 2)
    assert refused.status == 409 and refused.code == "seat_unavailable", refused.body
    rest = await best(customer, show, 3)
    assert rest.status == 201 and places(rest) == [(1, 3), (1, 4), (1, 5)], rest.body


async def test_the_seat_map_shows_the_seat_rule(api, manager):
    """``no_single_gaps`` is read where a reader looks: the seat map and the stream's snapshot,
    from the manager's change on (a new seat-map version; read your writes)."""
    show = await make_show(manager, rows=1, cols=3)
    before = await api.get(f"/schedules/{show['id']}/seats")
    assert before.status == 200 and before.body["no_single_gaps"] is False, before.body
    await gaps_on(manager, show)
    after = await api.get(f"/schedules/{show['id']}/seats")
    assert after.body["no_single_gaps"] is True, after.body
    assert after.body["version"] == before.body["version"] + 1
    stream = await api.get(f"/schedules/{show['id']}/seats/stream")  # the snapshot alone
    assert stream.status == 200 and \
        orjson.loads(stream.body.split("data: ", 1)[1])["no_single_gaps"] is True
    again = await manager.patch(f"/schedules/{show['id']}/seat-rules", {"no_single_gaps": True})
    assert again.status == 200  # the same rule again: no new version
    assert (await api.get(f"/schedules/{show['id']}/seats")).body["version"] \
        == after.body["version"]


async def test_picks_of_one_show_share_one_read_at_a_time():
    """``best.ShowReads``: twenty picks of one show started together wait for one read of its
    seats; picks that arrive while it is under way share the next one, begun when it ends."""
    reads: list[int] = []

    async def fetch(sql, args):
        reads.append(args[0])
        await asyncio.sleep(0.05)
        return [(2, 3, 0, 1, c, "available" if c != 2 else "held") for c in (1, 2, 3)]

    app = SimpleNamespace(db=SimpleNamespace(fetch=fetch))
    shows = best_available.ShowReads(Background())
    first = [asyncio.ensure_future(shows.look(app, 7)) for _ in range(20)]
    await asyncio.sleep(0.02)  # the first read is under way
    later = [asyncio.ensure_future(shows.look(app, 7)) for _ in range(20)]
    seatings, again = await asyncio.gather(*first), await asyncio.gather(*later)
    assert reads == [7, 7]  # forty picks, two reads
    assert all(s is seatings[0] for s in seatings) and all(s is again[0] for s in again)
    assert again[0] is not seatings[0]
    assert seatings[0].free == {(1, 1), (1, 3)} and seatings[0].rows == 2


async def test_early_reads_of_named_seats_share_one_read_at_a_time():
    """``contention.SeatReads``: holds of one show asked together share one read of the union
    of their seats; those asked while it is under way share the next, begun when it ends."""
    reads: list[tuple[str, float, float]] = []
    loop = asyncio.get_running_loop()

    async def fetch(sql, args):
        began = loop.time()
        await asyncio.sleep(0.05)
        reads.append((sql[sql.index(" AND ") + 5:sql.index(" WHERE ")], began, loop.time()))
        return [("scheduled", None, 1, c, "available") for c in (1, 2, 3)]

    app = SimpleNamespace(db=SimpleNamespace(fetch=fetch))
    seat_reads = SeatReads(Background())
    first = [asyncio.ensure_future(seat_reads.look(app, 7, [(1, c)])) for c in (1, 2)]
    await asyncio.sleep(0.02)  # the first read is under way
    later = [asyncio.ensure_future(seat_reads.look(app, 7, [(1, 3)])) for _ in range(5)]
    answers = await asyncio.gather(*first, *later)
    assert len(reads) == 2 and "3" not in reads[0][0] and "3" in reads[1][0], reads
    assert reads[1][1] >= reads[0][2]  # one at a time: the second began when the first ended
    assert answers[0][1][(1, 2)] == "available" and answers[-1][0] == ("scheduled", None)
