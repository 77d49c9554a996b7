"""Helpers for the catalogue tests (studios, plays, shows): unique names, quick creation (a
show to sell in a studio of its own), listening to the catalogue's events and calling a
service as another service would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

import aio_pika
import orjson
from pamqp.commands import Basic

from tests.conftest import Client, System


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:10]}"


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    """A whole minute, this far from now (UTC)."""
    moment = datetime.now(UTC) + timedelta(days=days, hours=hours, minutes=minutes)
    return moment.replace(second=0, microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def make_studio(manager: Client, rows: int = 5, cols: int = 8, **extra) -> dict:
    answer = await manager.post("/studios", {"name": unique("Studio"), "rows": rows,
                                             "cols": cols, **extra})
    assert answer.status == 201, answer.body
    return answer.body


def play_body(**overrides) -> dict:
    today = date.today()
    body = {"name": unique("Play"), "kind": "drama", "rating": "all", "duration_minutes": 120,
            "starts_on": str(today - timedelta(days=30)),
            "ends_on": str(today + timedelta(days=60)), "price": 4500}
    body.update(overrides)
    return body


async def make_play(manager: Client, **overrides) -> dict:
    answer = await manager.post("/plays", play_body(**overrides))
    assert answer.status == 201, answer.body
    return answer.body


async def make_schedule(manager: Client, play: dict, studio: dict, starts_at: datetime,
                        **extra) -> dict:
    answer = await manager.post("/schedules", {"play_id": play["id"], "studio_id": studio["id"],
                                               "starts_at": iso(starts_at), **extra})
    assert answer.status == 201, answer.body
    return answer.body


async def make_show(manager: Client, *, rows: int = 5, cols: int = 5, price: int = 4500,
                    starts_in: timedelta = timedelta(days=2),
                    not_seats: tuple[tuple[int, int, str], ...] = (), **extra) -> dict:
    """A show of a play of its own in a studio of its own (so shows never overlap), with
    ``not_seats`` as (row, col, kind) places that are not plain seats; ``extra``: more of
    the new show's body."""
    studio = await make_studio(manager, rows, cols)
    if not_seats:
        edit = await manager.patch(f"/studios/{studio['id']}/seats", {
            "seats": [{"row": r, "col": c, "kind": k} for r, c, k in not_seats]})
        assert edit.status == 200, edit.body
    starts_at = datetime.now(UTC) + starts_in
    day = starts_at.date()
    play = await make_play(manager, duration_minutes=90, price=price,
                           starts_on=str(day - timedelta(days=1)),
                           ends_on=str(day + timedelta(days=30)))
    return await make_schedule(manager, play, studio, starts_at, **extra)


class Events:
    """Envelopes received on a private queue bound to some routing keys."""

    def __init__(self) -> None:
        self.received: list[dict] = []

    async def wait_for(self, predicate: Callable[[dict], bool], within: float = 5.0) -> dict:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for envelope in self.received:
                if predicate(envelope):
                    return envelope
            await asyncio.sleep(0.05)
        raise AssertionError(f"no such event within {within}s; got "
                             f"{[e['type'] for e in self.received]}")

    def of(self, predicate: Callable[[dict], bool]) -> list[dict]:
        return [e for e in self.received if predicate(e)]


@asynccontextmanager
async def listening(system: System, *routing_keys: str):
    connection = await aio_pika.connect(system.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(system.settings.names.events_exchange,
                                                  aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
        for key in routing_keys:
            await queue.bind(exchange, routing_key=key)
        events = Events()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            events.received.append(orjson.loads(message.body))

        await queue.consume(on_message, no_ack=True)
        yield events


async def rpc(system: System, command: str, payload: dict, timeout: float = 5.0) -> list:
    """Call a service command as another service would (no role): → [ok, result_or_error]."""
    connection = await aio_pika.connect(system.settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        raw = await channel.get_underlay_channel()
        answer: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_reply(message) -> None:
            if not answer.done():
                answer.set_result(orjson.loads(message.body))

        await raw.basic_consume("amq.rabbitmq.reply-to", on_reply, no_ack=True)
        deadline = int(time.time() * 1000 + timeout * 1000)
        call = ["test-call", command, deadline, {"user_id": None, "role": None}, payload]
        await raw.basic_publish(
            orjson.dumps([call]),
            routing_key=system.settings.names.rpc_queue(command.split(".", 1)[0]),
            properties=Basic.Properties(reply_to="amq.rabbitmq.reply-to",
                                        expiration=str(int(timeout * 1000))))
        [(call_id, ok, value)] = await asyncio.wait_for(answer, timeout)
        return [bool(ok), value]
