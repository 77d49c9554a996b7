"""The faults of ``python -m chaos --cluster`` (``make chaos-cluster``): TTMS on the local
RabbitMQ and Galera clusters of ``launcher/cluster.py``, and one node at a time broken under
the rush — killed, stopped gracefully, or frozen past every heartbeat.

Why frozen and not cut off by a network namespace: every node and every TTMS process here
talks over 127.0.0.1 (RabbitMQ's node names are ``…@localhost``, Galera's group addresses are
loopback ports); a node in a namespace of its own would need its own addresses, a veth pair
each, Erlang long names and an epmd per namespace — another layout than the one tested. A
SIGSTOP longer than the AMQP heartbeat (≈10 s), Galera's suspect timeout (5 s) and HAProxy's
check (2 × 1 s) is seen by everyone else exactly as a node whose link went dead: silent, its
connections open; what it does not show is a node that goes on running alone (that one
``pause_minority`` and Galera's quorum would stop: non-primary).
"""

from __future__ import annotations

import asyncio
import signal
import time

from chaos import faults
from chaos.faults import Fault, Target, Window
from launcher.cluster import Cluster, GaleraNode, Node, RabbitNode


def _restart(node: Node) -> float:
    """Start a stopped node again; seconds until it serves (a Galera node: synced)."""
    began = time.monotonic()
    node.start(timeout=180)
    if isinstance(node, GaleraNode):
        node.wait_synced()
    return time.monotonic() - began


def _galera_writer(cluster: Cluster) -> GaleraNode:
    name = cluster.proxy.writer()
    return next((n for n in cluster.galeras if n.name == name), cluster.galeras[0])


def _broker_of(cluster: Cluster, connection_name: str) -> RabbitNode:
    """The RabbitMQ node the first connection named ``connection_name`` is on."""
    for node in cluster.rabbits:
        if not node.pid():
            continue
        listed = node.ctl("list_connections", "port", "client_properties", "-q",
                          "--no-table-headers")
        for line in listed.splitlines():
            if f'"{connection_name}"' in line:
                port = int(line.split()[0])
                return next(n for n in cluster.rabbits if n.port == port)
        break
    return cluster.rabbits[0]


async def _nodes_of(cluster: Cluster, target: Target,
                    service: str) -> tuple[RabbitNode, GaleraNode]:
    """The broker node ``service``'s first process is on, and the Galera writer."""
    rabbit = await asyncio.to_thread(
        _broker_of, cluster, f"{target.settings.namespace}-{service}")
    return rabbit, _galera_writer(cluster)


def killed(cluster: Cluster, pick, what: str, down_for: float = 3.0) -> Fault:
    """SIGKILL one node (``pick(cluster)``), leave it down ``down_for`` s, start it again."""

    async def fault(target: Target, window: Window) -> None:
        node = await asyncio.to_thread(pick, cluster)
        window.began = time.monotonic()
        try:
            await asyncio.to_thread(node.stop, signal.SIGKILL)
            window.notes.append(f"{what}: {node.name} SIGKILLed")
            await asyncio.sleep(down_for)
        finally:
            took = await asyncio.to_thread(_restart, node)
            window.ended = time.monotonic()
            window.notes.append(f"{node.name} started again, serving after {took:.1f}s; "
                                f"Galera writer now {cluster.proxy.writer()}")
    return fault


def stopped(cluster: Cluster, service: str, down_for: float = 3.0) -> Fault:
    """The broker node ``service``'s first process is connected to and the Galera writer
    (every service's database node), both stopped gracefully (SIGTERM: RabbitMQ closes its
    connections, MariaDB leaves the group) at once, then started again."""

    async def fault(target: Target, window: Window) -> None:
        rabbit, galera = await _nodes_of(cluster, target, service)
        window.began = time.monotonic()
        try:
            took = await asyncio.gather(asyncio.to_thread(rabbit.stop, signal.SIGTERM),
                                        asyncio.to_thread(galera.stop, signal.SIGTERM))
            window.notes.append(f"{service}'s broker node {rabbit.name} and the Galera writer "
                                f"{galera.name} stopped gracefully in {took[0]:.1f}s and "
                                f"{took[1]:.1f}s")
            await asyncio.sleep(down_for)
        finally:
            took = await asyncio.gather(asyncio.to_thread(_restart, rabbit),
                                        asyncio.to_thread(_restart, galera))
            window.ended = time.monotonic()
            window.notes.append(f"both serving again after {max(took):.1f}s; Galera writer "
                                f"now {cluster.proxy.writer()}")
    return fault


def frozen(cluster: Cluster, service: str, broker: bool, seconds: float = 20.0) -> Fault:
    """``service``'s broker node (``broker``) or the Galera writer frozen (SIGSTOP) for
    ``seconds``, then continued: what the others see of a node whose network link is cut."""

    async def fault(target: Target, window: Window) -> None:
        rabbit, galera = await _nodes_of(cluster, target, service)
        node = rabbit if broker else galera
        what = f"{service}'s broker node" if broker else "the Galera writer"
        window.began = time.monotonic()
        try:
            node.send(signal.SIGSTOP)
            window.notes.append(f"{what} {node.name} frozen {seconds:.0f}s")
            await asyncio.sleep(seconds)
            window.notes.append(f"Galera writer while frozen: {cluster.proxy.writer()}")
        finally:
            node.send(signal.SIGCONT)
            took = await asyncio.to_thread(galera.wait_synced)
            window.ended = time.monotonic()
            window.notes.append(f"continued; {galera.name} synced {took:.1f}s after; RabbitMQ "
                                f"running nodes: " + await asyncio.to_thread(_running, cluster)
                                + "; leaders of the RPC queues: "
                                + await asyncio.to_thread(_rpc_leaders, cluster, target))
    return fault


def _rpc_leaders(cluster: Cluster, target: Target) -> str:
    try:
        listed = cluster.rabbits[0].ctl("list_queues", "name", "leader", "-q",
                                        "--no-table-headers")
    except Exception as exc:  # noqa: BLE001 - a note only
        return f"? ({exc})"
    prefix = f"{target.settings.namespace}.rpc."
    return ", ".join(f"{line.split()[0].removeprefix(prefix)} {line.split()[1].split('@')[0]}"
                     for line in listed.splitlines() if line.startswith(prefix))


def _running(cluster: Cluster) -> str:
    try:
        return cluster.rabbits[0].ctl("eval", "rabbit_nodes:all_running().").strip()
    except Exception as exc:  # noqa: BLE001 - a note only
        return f"? ({exc})"


def plan(cluster: Cluster, seconds: float) -> list[tuple[str, Fault, dict]]:
    s = seconds
    phases = [
        (faults.NO_FAULT, faults.nothing, {"fault_at": s / 2}),
        ("RabbitMQ node c2 SIGKILLed, restarted after 3 s",
         killed(cluster, lambda c: c.rabbits[1], "RabbitMQ"), {"fault_at": s / 3}),
        ("Galera writer SIGKILLed, restarted after 3 s",
         killed(cluster, _galera_writer, "Galera"), {"fault_at": s / 3}),
        ("ticket_svc's broker node and the Galera writer stopped gracefully, restarted",
         stopped(cluster, "ticket"), {"fault_at": s / 3}),
        ("partition (simulated): ticket_svc's broker node frozen 20 s",
         frozen(cluster, "ticket", broker=True), {"fault_at": s / 4, "seconds": max(s, 30)}),
        ("partition (simulated): the Galera writer frozen 20 s",
         frozen(cluster, "ticket", broker=False), {"fault_at": s / 4, "seconds": max(s, 30)}),
    ]
    # the rush goes on 8 s past the restore, to see its rate come back
    return [(name, fault, {**options, "after": 8.0}) for name, fault, options in phases]
