"""TTMS on the local RabbitMQ and Galera clusters (``launcher/cluster.py``): three broker nodes,
three Galera nodes behind HAProxy, two processes of every service and of the gateway.

Starting the clusters takes one to two minutes on two cores, so these tests run only with
``TTMS_CLUSTER_TESTS=1`` and ``make test`` skips them. They use ``.cluster/`` and the cluster's
fixed ports: not while ``make cluster-up`` or ``make chaos-cluster`` runs.
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
from messages.settings import Settings
from tests.conftest import ADMIN_PASSWORD, NAMESPACE, PORT, TEST_ENV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("TTMS_CLUSTER_TESTS") != "1",
                       reason="the cluster tests run with TTMS_CLUSTER_TESTS=1"),
]

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


def _nodes_with_connections(cluster: Cluster) -> set[int]:
    listed = cluster.rabbits[0].ctl("list_connections", "port", "-q", "--no-table-headers")
    return {int(line) for line in listed.split()}


async def test_every_queue_is_replicated_and_processes_spread_over_the_nodes(cluster, target):
    listed = cluster[0].rabbits[0].ctl("list_queues", "name", "type", "members", "-q",
                                       "--no-table-headers")
    ours = [line for line in listed.splitlines() if line.startswith(f"{NAMESPACE}_cluster.")]
    assert ours
    for line in ours:
        assert line.split()[1] in ("quorum", "stream"), line
        assert line.count("@localhost") == 3, line
    assert len(_nodes_with_connections(cluster[0])) >= 2


async def test_sales_go_on_and_none_is_lost_when_a_broker_node_is_killed(cluster, target):
    fault = cluster_faults.killed(cluster[0], lambda c: c.rabbits[0], "RabbitMQ", down_for=4)
    result = await faults.phase(target, "RabbitMQ node c1 SIGKILLed", fault, seconds=14,
                                fault_at=4, workers=8)
    assert result.ok, "\n".join(faults.describe(result))
    assert result.summary["paid"] > 0
    assert result.recovered_in is not None


async def test_sales_go_on_when_the_galera_writer_is_killed(cluster, target):
    before = cluster[0].proxy.writer()
    fault = cluster_faults.killed(cluster[0], cluster_faults._galera_writer, "Galera")
    result = await faults.phase(target, "Galera writer SIGKILLed", fault, seconds=14,
                                fault_at=4, workers=8)
    assert result.ok, "\n".join(faults.describe(result))
    assert cluster[0].proxy.writer() != before  # no return to the node that came back
