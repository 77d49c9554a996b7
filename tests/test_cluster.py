"""TTMS on the local RabbitMQ and Galera clusters (``launcher/cluster.py``): three broker nodes,
three Galera nodes behind HAProxy, two processes of every service and of the gateway.

Starting the clusters takes one to two minutes on two cores, so the tests on them run only
with ``TTMS_CLUSTER_TESTS=1`` and ``make test`` skips them (it runs the two quick ones that
need no cluster: several broker addresses, and the queue arguments). They use ``.cluster/``
and the cluster's fixed ports: not while ``make cluster-up`` or ``make chaos-cluster`` runs.
"""

from __future__ import annotations

import os

import aiohttp
import pytest

import launcher
from chaos import cluster as cluster_faults
from chaos import faults
from chaos.rush import Api, customers, staff
from launcher.cluster import Cluster, settings_env
from messages.broker import Broker, connect, node_urls
from messages.settings import Names, Settings
from tests.conftest import ADMIN_PASSWORD, NAMESPACE, PORT, TEST_ENV

on_the_cluster = pytest.mark.skipif(os.environ.get("TTMS_CLUSTER_TESTS") != "1",
                                    reason="the cluster tests run with TTMS_CLUSTER_TESTS=1")

ENV = {**TEST_ENV, **settings_env(f"{NAMESPACE}_cluster", PORT)}


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster()
    cluster.down()
    cluster.up(ttms=False)
    try:
        url = launcher.up(cluster.run_dir, ENV, timeout=300)
        yield cluster, url
    finally:
        cluster.down()


@pytest.fixture(scope="module")
async def target(cluster):
    _, url = cluster
    settings = Settings(**{k.removeprefix("TTMS_").lower(): v for k, v in ENV.items()})
    async with aiohttp.ClientSession() as session:
        api = Api(session, url)
        manager = await staff(api, ADMIN_PASSWORD, "manager")
        people = await customers(api, 12)
        yield faults.Target(url, ENV, cluster[0].run_dir, settings, api, manager, people)


async def test_a_process_given_several_broker_addresses_uses_one_that_answers():
    """The first address refuses (nothing listens on port 1): the next one is used."""
    answering = Settings().amqp_url
    assert node_urls(f" amqp://guest:guest@127.0.0.1:1/ ,{answering}") == [
        "amqp://guest:guest@127.0.0.1:1/", answering]
    connection = await connect(f"amqp://guest:guest@127.0.0.1:1/,{answering}")
    await connection.close()
    for first in range(2):  # wherever it starts, it ends on the one that answers
        broker = Broker(f"amqp://guest:guest@127.0.0.1:1/,{answering}", "ttms-test-nodes")
        broker._node = first
        broker.url = broker.urls[first]
        await broker.start(wait=10)
        try:
            assert broker.ready.is_set() and broker.url == answering
        finally:
            await broker.stop()


def test_on_a_cluster_every_queue_is_replicated_and_on_one_node_commands_stay_classic():
    one, three = Names("ns"), Names("ns", replicas=3)
    assert one.transient() == {}
    assert one.quorum() == {"x-queue-type": "quorum"}
    assert three.transient(**{"x-expires": 5}) == {
        "x-queue-type": "quorum", "x-quorum-initial-group-size": 3, "x-expires": 5}
    assert three.stream()["x-initial-cluster-size"] == 3


def _nodes_with_connections(cluster: Cluster) -> set[int]:
    listed = cluster.rabbits[0].ctl("list_connections", "port", "-q", "--no-table-headers")
    return {int(line) for line in listed.split()}


@on_the_cluster
async def test_every_queue_is_replicated_and_processes_spread_over_the_nodes(cluster, target):
    listed = cluster[0].rabbits[0].ctl("list_queues", "name", "type", "members", "-q",
                                       "--no-table-headers")
    ours = [line for line in listed.splitlines() if line.startswith(f"{NAMESPACE}_cluster.")]
    assert ours
    for line in ours:
        assert line.split()[1] in ("quorum", "stream"), line
        assert line.count("@localhost") == 3, line
    assert len(_nodes_with_connections(cluster[0])) >= 2


@on_the_cluster
async def test_sales_go_on_and_none_is_lost_when_a_broker_node_is_killed(cluster, target):
    fault = cluster_faults.killed(cluster[0], lambda c: c.rabbits[0], "RabbitMQ", down_for=4)
    result = await faults.phase(target, "RabbitMQ node c1 SIGKILLed", fault, seconds=14,
                                fault_at=4, workers=8)
    assert result.ok, "\n".join(faults.describe(result))
    assert result.summary["paid"] > 0
    assert result.recovered_in is not None


@on_the_cluster
async def test_sales_go_on_when_the_galera_writer_is_killed(cluster, target):
    before = cluster[0].proxy.writer()
    fault = cluster_faults.killed(cluster[0], cluster_faults._galera_writer, "Galera")
    result = await faults.phase(target, "Galera writer SIGKILLed", fault, seconds=14,
                                fault_at=4, workers=8)
    assert result.ok, "\n".join(faults.describe(result))
    assert cluster[0].proxy.writer() != before  # no return to the node that came back
