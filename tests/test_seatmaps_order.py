"""The gateway's seat-map state (gateway/seatmaps.py) on its own: events applied in version
order, a gap waited for and then replaced by a snapshot, a doubt (broker) → a snapshot, and
never an older state after a newer one. ticket_svc's snapshot command is stood in for by a
function that answers what a test sets (no broker or database is involved in this logic)."""

from __future__ import annotations

import asyncio

from gateway import seatmaps
from messages.contracts.base import Envelope


class Snapshots:
    def __init__(self) -> None:
        self.version, self.codes, self.calls = 0, "aaaa", 0

    async def call(self, command, payload, caller, timeout):
        self.calls += 1
        return {"schedule_id": payload["id"], "rows": 1, "cols": 4, "price": 100,
                "version": self.version, "codes": self.codes}


def held(version: int | None, col: int, kind: str = "ticket.held") -> Envelope:
    data = {"schedule_id": 7, "seats_version": version,
            "seats": [{"row": 1, "col": col, "price": 100}]}
    return Envelope(type=kind, producer="test", data=data)


async def test_events_apply_in_version_order_and_a_gap_means_a_snapshot(monkeypatch):
    monkeypatch.setattr(seatmaps, "GAP_SECONDS", 0.05)
    rpc = Snapshots()
    maps = seatmaps.SeatMaps(rpc)
    show = await maps.get(7)
    assert (show.version, bytes(show.codes), rpc.calls) == (0, b"aaaa", 1)
    maps.on_event(held(2, 2))            # early: waits for 1
    assert show.version == 0 and bytes(show.codes) == b"aaaa"
    maps.on_event(held(1, 1))            # now 1 and 2, in order
    assert show.version == 2 and bytes(show.codes) == b"hhaa"
    maps.on_event(held(2, 2, "ticket.released"))  # an old version again: ignored
    assert bytes(show.codes) == b"hhaa"
    maps.on_event(held(4, 4))            # 3 never comes
    await asyncio.sleep(0.2)
    assert show.stale
    rpc.version, rpc.codes = 4, "hhsh"   # ticket_svc's rows
    again = await maps.get(7)
    assert again is show and (show.version, bytes(show.codes)) == (4, b"hhsh")
    assert rpc.calls == 2 and not show.stale


async def test_a_doubt_means_a_snapshot_and_never_an_older_state():
    rpc = Snapshots()
    maps = seatmaps.SeatMaps(rpc)
    rpc.version = 5
    show = await maps.get(7)
    maps.in_doubt()                      # the broker's connection was lost
    rpc.version, rpc.codes = 3, "haaa"   # a snapshot older than what was answered
    await maps.get(7)
    assert show.version == 5 and bytes(show.codes) == b"aaaa" and rpc.calls == 2
    maps.on_event(held(None, 1))         # an event without a version: a doubt too
    rpc.version, rpc.codes = 6, "ahaa"
    assert bytes((await maps.get(7)).codes) == b"ahaa" and rpc.calls == 3


async def test_read_your_writes_waits_for_the_writes_version():
    rpc = Snapshots()
    maps = seatmaps.SeatMaps(rpc)
    await maps.get(7)
    answer = {"schedule_id": 7, "seats_version": 1, "id": 99}
    maps.wrote(answer)
    assert "seats_version" not in answer  # the gateway's own business
    reader = asyncio.ensure_future(maps.get(7))
    await asyncio.sleep(0.05)
    assert not reader.done()             # waiting for version 1, not answering version 0
    maps.on_event(held(1, 3))
    show = await reader
    assert show.version == 1 and bytes(show.codes) == b"aaha" and rpc.calls == 1
