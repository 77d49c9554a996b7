"""E-tickets and check-in at the door, through the whole path (issue 15 parts 1 and 2):
signed codes, the QR code, every refusal, one admission under concurrency, the offline list
and batch, and refunds refused after a check-in."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from messages.contracts.door import TicketCheckedIn
from tests.catalogue import make_show
from tests.test_orders import NOW, Sale, Show, bus, wrap  # noqa: F401 (bus: a fixture)
from tests.test_sales import hold
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
SOON = timedelta(minutes=30)  # inside the door window (it opens 2 h before the show)


async def bought(client, show: dict, *pairs: tuple[int, int], **extra) -> list[dict]:
    held = await hold(client, show, *pairs, **extra)
    assert held.status == 201, held.body
    paid = await client.post(f"/reservations/{held.body['id']}/pay", {})
    assert paid.status == 200, paid.body
    return paid.body["tickets"]


async def code_of(client, ticket: dict) -> str:
    answer = await client.get(f"/tickets/{ticket['id']}")
    assert answer.status == 200, answer.body
    assert answer.body["code"].startswith("TT1."), answer.body
    return answer.body["code"]


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_qr_svg(svg: str) -> str:
    """Rasterise segno's SVG (one path of horizontal strokes: ``M x y``, ``h n``, ``m dx dy``)
    and read it back with zxing-cpp, as a door scanner would read the picture."""
    path = re.search(r' d="([^"]+)"', svg).group(1)
    scale = int(re.search(r'scale\((\d+)\)', svg).group(1))
    size = int(re.search(r'width="(\d+)"', svg).group(1)) // scale
    dark: set[tuple[int, int]] = set()
    x = y = 0.0
    for op, a, b in re.findall(r"([MmHh])(-?[\d.]+)(?:[ ,](-?[\d.]+))?", path):
        if op == "M":
            x, y = float(a), float(b)
        elif op == "m":
            x, y = x + float(a), y + float(b)
        else:
            n = float(a)
            for i in range(int(n)):
                dark.add((int(x) + i, int(y)))
            x += n
    pixel = 4
    width = size * pixel
    image = bytearray([255]) * (width * width)
    for cx, cy in dark:
        for dy in range(pixel):
            start = (cy * pixel + dy) * width + cx * pixel
            image[start:start + pixel] = bytes(pixel)
    found = zxingcpp.read_barcodes(memoryview(bytes(image)).cast("B", (width, width)))
    assert found, "no QR code found in the SVG"
    return found[0].text


async def test_a_sold_ticket_has_a_signed_code_that_checks_in_once(api, manager, clerk, customer):
    show = await make_show(manager, starts_in=SOON)
    [ticket] = await bought(customer, show, (1, 1))
    answer = await customer.get(f"/tickets/{ticket['id']}")
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "sold" and answer.body["checked_in_at"] is None
    assert answer.body["play_name"] and answer.body["starts_at"]
    code = answer.body["code"]

    # The code is Ed25519-signed: the checkin list's public key verifies it, offline.
    listing = await clerk.get(f"/schedules/{show['id']}/checkin-list")
    assert listing.status == 200, listing.body
    assert listing.body["algorithm"] == "Ed25519" and listing.body["sold"] == 1
    raw = _b64(code[len("TT1."):])
    key = Ed25519PublicKey.from_public_bytes(_b64(listing.body["public_key"]))
    key.verify(raw[22:], raw[:22])  # raises if not TTMS's
    assert int.from_bytes(raw[:8], "big") == ticket["id"]

    # The QR code reads back to the same code.
    qr = await customer.get(f"/tickets/{ticket['id']}/qr.svg")
    assert qr.status == 200 and qr.headers["Content-Type"].startswith("image/svg+xml")
    assert decode_qr_svg(qr.body) == code

    admitted = await clerk.post("/checkins", {"code": code, "schedule_id": show["id"]})
    assert admitted.status == 200, admitted.body
    assert admitted.body["result"] == "admitted"
    assert admitted.body["ticket"]["id"] == ticket["id"]
    again = await clerk.post("/checkins", {"code": code})
    assert again.status == 409 and again.code == "already_checked_in", again.body
    assert again.body["errors"][0]["msg"].startswith(admitted.body["checked_in_at"][:19])
    # Checked in: no refund any more.
    refund = await customer.post(f"/tickets/{ticket['id']}/refund")
    assert refund.status == 409 and refund.code == "conflict", refund.body
    after = await clerk.get(f"/schedules/{show['id']}/checkin-list")
    assert after.body["checked_in"] == [ticket["id"]]

    # ticket.checked_in reaches order_svc: the box office counts attendance per show.
    async def attended():
        office = await manager.get(f"/box-office/plays/{show['play_id']}")
        assert office.status == 200, office.body
        [line] = [s for s in office.body["schedules"] if s["schedule_id"] == show["id"]]
        assert line["checked_in"] == 1 and line["no_show"] is None, line  # not ended yet
    await eventually(attended, timeout=5)


async def test_every_refusal_at_the_door(manager, clerk, customer, new_user):
    show = await make_show(manager, starts_in=SOON)
    other_show = await make_show(manager, starts_in=SOON)
    later_show = await make_show(manager, starts_in=timedelta(days=2))
    a, b = await bought(customer, show, (1, 1), (1, 2))
    [later] = await bought(customer, later_show, (2, 2))
    code_a, code_b = await code_of(customer, a), await code_of(customer, b)

    # Garbage, a forged signature, an altered payload: 422 invalid_code.
    for bad in ("hello", "TT1.", "TT1.!!!!", code_a[:-4] + ("AAAA" if code_a[-4:] != "AAAA"
                                                            else "BBBB")):
        refused = await clerk.post("/checkins", {"code": bad})
        assert refused.status == 422 and refused.code == "invalid_code", (bad, refused.body)
    raw = bytearray(_b64(code_a[4:]))
    raw[17] ^= 1  # another column, same signature
    forged = "TT1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    refused = await clerk.post("/checkins", {"code": forged})
    assert refused.status == 422 and refused.code == "invalid_code", refused.body

    wrong = await clerk.post("/checkins", {"code": code_a, "schedule_id": other_show["id"]})
    assert wrong.status == 409 and wrong.code == "wrong_show", wrong.body

    closed = await clerk.post("/checkins", {"code": await code_of(customer, later)})
    assert closed.status == 409 and closed.code == "checkin_closed", closed.body

    refunded = await customer.post(f"/tickets/{b['id']}/refund")
    assert refunded.status == 200, refunded.body
    gone = await clerk.post("/checkins", {"code": code_b})
    assert gone.status == 409 and gone.code == "ticket_refunded", gone.body
    assert (await customer.get(f"/tickets/{b['id']}")).body["code"] is None
    qr = await customer.get(f"/tickets/{b['id']}/qr.svg")
    assert qr.status == 409 and qr.code == "ticket_refunded"

    # The seat sold again after the refund: a new ticket, a new code that admits.
    [resold] = await bought(customer, show, (1, 2))
    new_code = await code_of(customer, resold)
    assert new_code != code_b
    assert (await clerk.post("/checkins", {"code": new_code})).status == 200
    assert (await clerk.post("/checkins", {"code": code_b})).code == "ticket_refunded"

    # Only clerks and above; another customer cannot read the ticket.
    stranger = await new_user()
    assert (await customer.post("/checkins", {"code": code_a})).status == 403
    assert (await stranger.get(f"/tickets/{a['id']}")).status == 403
    assert (await stranger.get(f"/tickets/{a['id']}/qr.svg")).status == 403


async def test_twenty_door_devices_scanning_one_code_admit_it_once(manager, clerk, customer,
                                                                    new_user):
    show = await make_show(manager, starts_in=SOON)
    [ticket] = await bought(customer, show, (3, 3))
    code = await code_of(customer, ticket)
    doors = [clerk] + [await new_user("clerk") for _ in range(3)]
    answers = await asyncio.gather(*(doors[i % len(doors)].post("/checkins", {"code": code})
                                     for i in range(20)))
    statuses = sorted((a.status, a.code) for a in answers)
    assert [a.status for a in answers].count(200) == 1, statuses
    assert all(a.status == 200 or a.code == "already_checked_in" for a in answers), statuses
    firsts = {a.body["errors"][0]["msg"] for a in answers if a.status == 409}
    [winner] = [a for a in answers if a.status == 200]
    assert len(firsts) == 1 and next(iter(firsts))[:19] == winner.body["checked_in_at"][:19]


async def test_a_refund_racing_a_check_in_never_both_win(manager, clerk, customer):
    show = await make_show(manager, starts_in=SOON)
    tickets = await bought(customer, show, *[(4, c) for c in range(1, 6)])
    for ticket in tickets:
        code = await code_of(customer, ticket)
        checkin, refund = await asyncio.gather(
            clerk.post("/checkins", {"code": code}),
            customer.post(f"/tickets/{ticket['id']}/refund"))
        assert sorted([checkin.status, refund.status]) == [200, 409], (checkin.body, refund.body)
        final = (await customer.get(f"/tickets/{ticket['id']}")).body
        assert (final["status"] == "refunded") == (refund.status == 200)
        assert (final["checked_in_at"] is not None) == (checkin.status == 200)


async def test_offline_scans_uploaded_later_first_scan_wins(manager, clerk, customer):
    show = await make_show(manager, starts_in=SOON)
    a, b, c = await bought(customer, show, (5, 1), (5, 2), (5, 3))
    code_a, code_b, code_c = [await code_of(customer, t) for t in (a, b, c)]
    assert (await customer.post(f"/tickets/{c['id']}/refund")).status == 200
    # b came in online before the device uploads.
    assert (await clerk.post("/checkins", {"code": code_b})).status == 200
    listing = (await clerk.get(f"/schedules/{show['id']}/checkin-list")).body
    assert listing["refunded"] == [c["id"]] and listing["checked_in"] == [b["id"]]

    now = datetime.now(UTC)
    scans = [  # out of order on purpose: the earliest scan of a wins, whatever its place
        {"code": code_a, "scanned_at": (now - timedelta(seconds=10)).isoformat()},
        {"code": code_a, "scanned_at": (now - timedelta(seconds=60)).isoformat()},
        {"code": code_b, "scanned_at": (now - timedelta(seconds=30)).isoformat()},
        {"code": code_c, "scanned_at": (now - timedelta(seconds=20)).isoformat()},
        {"code": "garbage", "scanned_at": now.isoformat()},
    ]
    answer = await clerk.post("/checkins/batch", {"schedule_id": show["id"], "scans": scans})
    assert answer.status == 200, answer.body
    results = [(i["index"], i["result"]) for i in answer.body["items"]]
    assert results == [(0, "duplicate"), (1, "admitted"), (2, "duplicate"),
                       (3, "ticket_refunded"), (4, "invalid_code")], answer.body
    assert answer.body["admitted"] == 1
    first = answer.body["items"][1]["checked_in_at"]
    assert first[:19] == (now - timedelta(seconds=60)).isoformat()[:19]
    assert answer.body["items"][0]["checked_in_at"] == first
    # Uploaded twice (the device retried): nothing new is admitted.
    again = await clerk.post("/checkins/batch", {"schedule_id": show["id"], "scans": scans})
    assert again.body["admitted"] == 0
    assert (await clerk.post("/checkins", {"code": code_a})).code == "already_checked_in"


async def test_a_reissued_code_admits_and_every_earlier_one_is_refused(
        manager, clerk, customer, new_user):
    """A ticket shared or lost gets a new code: the old one is refused online and offline
    (the check-in list names the version that admits), the new one admits once; a refunded or
    checked-in ticket gets none, and nobody but its owner or staff may ask."""
    show = await make_show(manager, starts_in=SOON)
    shared, refunded = await bought(customer, show, (4, 1), (4, 2))
    first = await code_of(customer, shared)
    assert (await (await new_user()).post(f"/tickets/{shared['id']}/reissue")).status == 403
    by_owner = await customer.post(f"/tickets/{shared['id']}/reissue")
    assert by_owner.status == 200, by_owner.body
    second = by_owner.body["code"]
    assert second != first and second == await code_of(customer, shared)
    by_clerk = await clerk.post(f"/tickets/{shared['id']}/reissue")  # at the box office
    assert by_clerk.status == 200, by_clerk.body
    third = by_clerk.body["code"]
    assert len({first, second, third}) == 3
    listing = (await clerk.get(f"/schedules/{show['id']}/checkin-list")).body
    assert listing["reissued"] == {str(shared["id"]): 3}, listing
    assert int.from_bytes(_b64(third[4:])[18:22], "big") == 3  # the version a code carries

    for old in (first, second):
        refused = await clerk.post("/checkins", {"code": old})
        assert refused.status == 422 and refused.code == "invalid_code", refused.body
    now = datetime.now(UTC).isoformat()
    batch = await clerk.post("/checkins/batch", {"scans": [{"code": second, "scanned_at": now}]})
    assert [i["result"] for i in batch.body["items"]] == ["invalid_code"], batch.body
    assert (await clerk.post("/checkins", {"code": third})).status == 200
    spent = await customer.post(f"/tickets/{shared['id']}/reissue")
    assert spent.status == 409 and spent.code == "conflict", spent.body

    assert (await customer.post(f"/tickets/{refunded['id']}/refund")).status == 200
    gone = await customer.post(f"/tickets/{refunded['id']}/reissue")
    assert gone.status == 409 and gone.code == "ticket_refunded", gone.body
    assert (await customer.post("/tickets/999999999/reissue")).status == 404


@pytest.mark.parametrize("body", [{}, {"code": ""}, {"code": "x" * 201},
                                  {"code": "TT1.a", "schedule_id": 0}])
async def test_a_malformed_check_in_is_422(clerk, body):
    answer = await clerk.post("/checkins", body)
    assert answer.status == 422 and answer.code == "validation_error", answer.body


async def test_box_office_counts_check_ins_and_after_the_show_no_shows(
        bus, manager, customer):  # noqa: F811
    """ticket.checked_in events, before their sale and twice, for a show that has ended."""
    show = Show(starts_at=NOW - timedelta(hours=5))
    sale = Sale(show, customer.user["id"], [(2, 1), (2, 2), (2, 3), (2, 4)])
    checked_in = wrap(TicketCheckedIn(
        ticket_id=sale.ticket_ids[0], reservation_id=sale.id, user_id=sale.user_id,
        schedule_id=show.schedule_id, play_id=show.play_id, studio_id=show.studio_id,
        row=2, col=1, price=show.price, checked_in_at=show.starts_at - timedelta(minutes=20)))
    await bus.publish(*show.catalogue(), checked_in, sale.held(), sale.sold(), checked_in,
                      sale.refunded(3))

    async def exact():
        office = await manager.get(f"/box-office/plays/{show.play_id}")
        assert office.status == 200, office.body  # 404 until the first event is applied
        assert len(office.body["schedules"]) == 1, office.body  # the show's event may lag
        [line] = office.body["schedules"]
        assert (line["sold"], line["refunded"], line["checked_in"], line["no_show"]) == (
            4, 1, 1, 2), line
        # The grouped report counts them too: by play and studio (this show's own), and by
        # day (other tests' shows may share it).
        for group, key in (("play", show.play_id), ("studio", show.studio_id),
                           ("day", show.starts_at.date().isoformat())):
            report = await manager.get(f"/box-office?group_by={group}")
            [mine] = [i for i in report.body["items"] if i["key"] == key]
            if group == "day":
                assert mine["checked_in"] >= 1 and mine["no_show"] >= 2, mine
            else:
                assert (mine["checked_in"], mine["no_show"]) == (1, 2), mine
    await eventually(exact, timeout=5)


def test_production_refuses_the_development_signing_key():
    """Real JWT and admin secrets, but the documented check-in signing key: refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTMS_")}
    env.update(TTMS_ENV="production", TTMS_NAMESPACE="ttms_prodcheck",
               TTMS_JWT_SECRET="a-production-jwt-secret-0123456789abcdef",
               TTMS_ADMIN_PASSWORD="a-production-admin-password")
    done = subprocess.run([sys.executable, "-m", "ticket_svc"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "TTMS_TICKET_SIGNING_KEY" in done.stderr, done.stderr[-2000:]
