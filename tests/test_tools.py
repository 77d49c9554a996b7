"""The operator tools (`ttms-orders`, run here as `python -m order_svc.tools` in the test
namespace): dead letters, replay from the event log, reconcile with ticket_svc's ledger."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from messages.contracts.base import Envelope
from order_svc import tools
from tests.conftest import ROOT
from tests.test_orders import Bus, Sale, Show, exact, figures
from tests.waiting import eventually


@pytest.fixture(scope="module")
async def bus(system):
    bus = Bus(system.settings.amqp_url, system.settings.names.events_exchange)
    yield bus
    await bus.close()


@dataclass
class Run:
    code: int
    out: str
    err: str


async def tool(system, *args: str) -> Run:
    """``ttms-orders *args``, run in this process (quicker than a new interpreter each time)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = await tools.run(tools.parser().parse_args(args), system.settings)
        except SystemExit as exit:  # argparse refusing the arguments
            code = exit.code
    return Run(code, out.getvalue(), err.getvalue())


async def command_line(system, *args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "order_svc.tools", *args, cwd=ROOT,
        env={**os.environ, **system.env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return Run(process.returncode, out.decode(), err.decode())


async def test_malformed_event_is_dead_lettered_and_applied_once_after_a_fix(
        system, bus, manager, customer, tmp_path):
    show = Show(price=6000)
    good = Sale(show, customer.user["id"], [(2, 1)])
    broken = Sale(show, customer.user["id"], [(2, 2), (2, 3)])
    sold = broken.sold()
    malformed = Envelope(id=sold.id, type=sold.type, producer="ticket",
                         data={k: v for k, v in sold.data.items() if k != "tickets"})
    await bus.publish(*show.catalogue(), malformed, good.held(), good.sold())
    # The consumer goes on past the bad event.
    await eventually(lambda: exact(manager, show, (1, 0, 6000, 0)))

    async def listed(runner=tool):
        run = await runner(system, "dead-letters", "list", "--consumer", "order")
        assert run.code == 0, run.err
        assert sold.id in run.out and "ticket.sold" in run.out and "rejected" in run.out
    await eventually(lambda: listed(command_line))  # once as a real command line
    shown = await tool(system, "dead-letters", "show", sold.id, "--consumer", "order")
    assert shown.code == 0, shown.err
    letter = orjson.loads(shown.out)
    assert letter["consumer"] == "order" and letter["routing_key"] == "ticket.sold"
    assert letter["event"]["id"] == sold.id and "tickets" not in letter["event"]["data"]

    # Re-driven unchanged it is still malformed: back in the dead-letter queue, no effect.
    again = await tool(system, "dead-letters", "redrive", sold.id, "--consumer", "order")
    assert again.code == 0 and f"re-drove {sold.id}" in again.out, again.err
    await eventually(listed)

    # The fix: the event as it should have been, same id.
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(orjson.dumps(sold.model_dump(mode="json")))
    wrong_id = tmp_path / "wrong.json"
    wrong_id.write_bytes(orjson.dumps({**sold.model_dump(mode="json"), "id": "x"}))
    refused = await tool(system, "dead-letters", "redrive", sold.id, "--body", str(wrong_id))
    assert refused.code == 2 and "keep the id" in refused.err
    run = await tool(system, "dead-letters", "redrive", sold.id, "--consumer", "order",
                     "--body", str(fixed))
    assert run.code == 0 and f"re-drove {sold.id}" in run.out, run.err
    await eventually(lambda: exact(manager, show, (3, 0, 18000, 0)))
    # Applied once: nothing left to re-drive, and a duplicate changes nothing.
    gone = await tool(system, "dead-letters", "redrive", sold.id, "--consumer", "order")
    assert gone.code == 1 and "no dead letter" in gone.err
    await bus.publish(sold)
    await asyncio.sleep(1)
    await exact(manager, show, (3, 0, 18000, 0))
    order = await customer.get(f"/orders/{broken.id}")
    assert order.body["status"] == "paid" and order.body["total"] == 12000


async def test_redrive_all_to_the_consumers_own_queue(system, bus, customer):
    sale = Sale(Show(), customer.user["id"], [(3, 3)])
    held = sale.held()
    malformed = Envelope(id=held.id, type=held.type, producer="ticket",
                         data={**held.data, "seats": "not a list"})
    await bus.publish(malformed)

    async def dead_once_more(deaths: int) -> dict:
        run = await tool(system, "dead-letters", "show", held.id, "--consumer", "order")
        assert run.code == 0, run.err
        letter = orjson.loads(run.out)
        assert letter["deaths"] == deaths and letter["reason"] == "rejected", letter
        return letter

    letter = await eventually(lambda: dead_once_more(1))
    assert letter["queue"] == f"{system.settings.namespace}.order.events"
    run = await tool(system, "dead-letters", "redrive", "--all", "--to-queue",
                     "--consumer", "order")
    assert run.code == 0 and f"re-drove {held.id} (ticket.held) to queue of order" in run.out
    await eventually(lambda: dead_once_more(2))  # still malformed: dead again, counted
    assert (await tool(system, "dead-letters", "redrive")).code == 2  # neither ID nor --all


async def _snapshot(manager, customer, play_ids: list[int], order_ids: list[int]) -> dict:
    report = await manager.get("/box-office", params={"group_by": "day"})
    assert report.status == 200, report.body
    return {"days": report.body["items"],
            "plays": [await figures(manager, p) for p in play_ids],
            "orders": [(await customer.get(f"/orders/{o}")).body for o in order_ids]}


async def test_replay_gives_the_same_figures_as_live(system, bus, manager, customer):
    show = Show(price=2000)
    sales = [Sale(show, customer.user["id"], [(3, n)]) for n in range(1, 5)]
    await bus.publish(*show.catalogue(), *(s.held() for s in sales),
                      *(s.sold() for s in sales if s is not sales[1]),
                      sales[0].refunded(), sales[1].released())
    expected = (3, 1, 6000, 2000)
    await eventually(lambda: exact(manager, show, expected))
    ids = [s.id for s in sales]
    before = await _snapshot(manager, customer, [show.play_id], ids)

    run = await tool(system, "replay", "--from-start")
    assert run.code == 0, run.err
    assert "replayed" in run.out and "applied" in run.out
    # `days` covers the whole namespace, on purpose: every test before this one must leave the
    # live order tables exactly as the event log says. A test that applies events to order_svc's
    # tables itself (not through the events exchange) must use a scratch database, as
    # tests/test_orders_concurrency.py does (`<ns>_order_conc`).
    assert await _snapshot(manager, customer, [show.play_id], ids) == before

    # Sales go on while a replay runs: the swap loses none of them.
    more = [Sale(show, customer.user["id"], [(4, n)]) for n in range(1, 4)]
    since = datetime.now(UTC) - timedelta(seconds=1)
    replaying = asyncio.create_task(tool(system, "replay"))
    for sale in more:
        await bus.publish(sale.held(), sale.sold())
        await asyncio.sleep(0.05)
    run = await replaying
    assert run.code == 0, run.err
    await eventually(lambda: exact(manager, show, (6, 1, 12000, 2000)))
    next_offset = int(run.out.split("next offset ")[1].split(";")[0])

    # From a time, or an offset: the live tables plus what is logged since.
    late = Sale(show, customer.user["id"], [(4, 4)])
    await bus.publish(late.held(), late.sold())
    run = await tool(system, "replay", "--since", since.isoformat())
    assert run.code == 0 and "replayed" in run.out, run.err
    await eventually(lambda: exact(manager, show, (7, 1, 14000, 2000)))
    run = await tool(system, "replay", "--offset", str(next_offset - 3))
    assert run.code == 0, run.err
    first = int(run.out.split("from offset ")[1].split(":")[0])
    assert next_offset - 3 <= first < next_offset + 5  # markers take offsets too
    await exact(manager, show, (7, 1, 14000, 2000))
    stopped = int(run.out.split("next offset ")[1].split(";")[0])
    run = await tool(system, "replay", "--resume")  # from where the last one stopped
    assert run.code == 0, run.err
    assert "replayed 0 logged events" in run.out or f"from offset {stopped}" in run.out, run.out
    await exact(manager, show, (7, 1, 14000, 2000))
    assert (await tool(system, "replay", "--offset", "x")).code == 2


async def test_reconcile_prints_every_difference(system, bus, manager, customer):
    # Sales ticket_svc never made: the box office has them, the ledger does not.
    show = Show(price=1500)
    sale = Sale(show, customer.user["id"], [(2, 4), (2, 5)])
    await bus.publish(*show.catalogue(), sale.held(), sale.sold())
    await eventually(lambda: exact(manager, show, (2, 0, 3000, 0)))
    run = await tool(system, "reconcile", "--wait", "0")
    assert run.code == 1, run.err
    assert (f"schedule {show.schedule_id}: not in ticket_svc's ledger (box office: "
            "tickets_sold 2, tickets_refunded 0, gross 3000, refunded 0)") in run.out
    assert "difference(s)" in run.err
