"""compose.yaml holds together without a Docker engine: services, images, start order, settings."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import launcher
from messages.settings import PACKAGES, Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "compose.yaml"
SERVICES = PACKAGES


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def depends_on(service: dict) -> dict[str, str]:
    """depends_on as {service: condition}; the short list form means service_started."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def python_services(compose: dict) -> dict[str, dict]:
    return {name: spec for name, spec in compose["services"].items() if "build" in spec}


def test_every_part_of_ttms_is_a_service(compose):
    expected = {"rabbitmq", "mariadb", "migrate", "gateway", *SERVICES}
    assert expected <= set(compose["services"])


def test_every_build_points_at_an_existing_dockerfile(compose):
    for name, spec in python_services(compose).items():
        build = spec["build"]
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / build.get("context", ".")
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: no {dockerfile}"


def test_each_python_process_runs_its_own_package(compose):
    services = compose["services"]
    for name in (*SERVICES, "gateway"):
        assert services[name]["command"] == ["python", "-m", name]
    assert services["migrate"]["command"] == ["python", "-m", "migrations", "upgrade"]
    assert services["migrate"]["restart"] == "no"


def test_broker_and_database_have_healthchecks(compose):
    for name in ("rabbitmq", "mariadb"):
        healthcheck = compose["services"][name].get("healthcheck", {})
        assert healthcheck.get("test"), f"{name}: no healthcheck"


def test_migrate_waits_for_a_healthy_database(compose):
    assert depends_on(compose["services"]["migrate"])["mariadb"] == "service_healthy"


def test_services_wait_for_broker_database_and_a_finished_migration(compose):
    for name in SERVICES:
        deps = depends_on(compose["services"][name])
        assert deps.get("rabbitmq") == "service_healthy", name
        assert deps.get("mariadb") == "service_healthy", name
        assert deps.get("migrate") == "service_completed_successfully", name


def test_gateway_waits_for_the_services_and_is_published(compose):
    gateway = compose["services"]["gateway"]
    assert set(SERVICES) <= set(depends_on(gateway))
    assert depends_on(gateway)["rabbitmq"] == "service_healthy"
    assert "8080:8080" in gateway["ports"]


def test_start_order_has_no_cycles_and_names_only_known_services(compose):
    services = compose["services"]
    pending = {name: set(depends_on(spec)) for name, spec in services.items()}
    for name, deps in pending.items():
        assert deps <= set(services), f"{name} depends on unknown {deps - set(services)}"
    while pending:
        startable = {name for name, deps in pending.items() if not deps & set(pending)}
        assert startable, f"depends_on cycle among {sorted(pending)}"
        for name in startable:
            del pending[name]


def test_python_processes_get_only_settings_ttms_knows(compose):
    known = {f"TTMS_{field.upper()}" for field in Settings.model_fields}
    for name, spec in python_services(compose).items():
        environment = spec.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(entry.partition("=")[::2] for entry in environment)
        unknown = set(environment) - known
        assert not unknown, f"{name}: not a TTMS setting: {sorted(unknown)}"
    referenced = set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text()))
    assert referenced <= known, f"unknown variables: {sorted(referenced - known)}"


def docker_compose_works() -> bool:
    if not shutil.which("docker"):
        return False
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not docker_compose_works(), reason="no docker compose plugin here")
def test_docker_compose_accepts_the_file():
    # The required secrets are checked by compose itself; give it stand-ins.
    env = {**os.environ, "TTMS_JWT_SECRET": "check", "TTMS_ADMIN_PASSWORD": "check"}
    result = subprocess.run(
        ["docker", "compose", "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_launcher_starts_every_service_and_then_the_gateway():
    """The launcher keeps its own copy of the services (it runs on the standard library alone,
    without pydantic's settings): held here to ``messages.settings.SERVICES``."""
    assert launcher.SERVICES == (*PACKAGES, "gateway")


CLUSTER_PYTHON = ("cluster-migrate", *(f"cluster-{name}" for name in SERVICES), "cluster-gateway")


def test_the_cluster_profile_has_three_broker_nodes_three_galera_nodes_and_a_proxy(compose):
    services = compose["services"]
    cluster = {name for name, spec in services.items() if "cluster" in spec.get("profiles", [])}
    assert {"rabbit1", "rabbit2", "rabbit3", "galera1", "galera2", "galera3", "galera-proxy",
            *CLUSTER_PYTHON} == cluster
    assert [n for n in ("galera1", "galera2", "galera3")
            if "--wsrep-new-cluster" in services[n]["command"]] == ["galera1"]
    for name in ("rabbit1", "rabbit2", "rabbit3", "galera1", "galera2", "galera3"):
        assert services[name]["healthcheck"]["test"], name
    # each node its own data, and one cookie for the three broker nodes
    volumes = [v for n in cluster for v in services[n].get("volumes", []) if "-data:" in v]
    assert len(volumes) == len(set(volumes)) == 6
    assert len({services[n]["environment"]["RABBITMQ_ERLANG_COOKIE"]
                for n in ("rabbit1", "rabbit2", "rabbit3")}) == 1
    for path in ("docker/rabbitmq/cluster.conf", "docker/mariadb/galera.cnf",
                 "docker/haproxy/haproxy.cfg", "docker/mariadb/haproxy-user.sql"):
        assert (ROOT / path).is_file(), path


def test_ttms_on_the_cluster_knows_every_node_and_runs_two_of_everything(compose):
    services = compose["services"]
    for name in CLUSTER_PYTHON:
        spec = services[name]
        environment = spec["environment"]
        assert environment["TTMS_AMQP_URL"].split(",") == [
            f"amqp://guest:guest@rabbit{n}:5672/" for n in (1, 2, 3)], name
        assert environment["TTMS_AMQP_REPLICAS"] == "3"
        assert environment["TTMS_DB_HOST"] == "galera-proxy"
        assert spec["command"][:2] == ["python", "-m"]
    for name in SERVICES:
        spec = services[f"cluster-{name}"]
        assert spec["command"] == ["python", "-m", name]
        assert spec["deploy"]["replicas"] == 2
        assert depends_on(spec)["cluster-migrate"] == "service_completed_successfully"
        assert {f"rabbit{n}" for n in (1, 2, 3)} <= set(depends_on(spec))
    assert services["cluster-gateway"]["environment"]["TTMS_GATEWAY_PROCESSES"] == "2"
    assert not set(depends_on(services["cluster-gateway"])) & {"rabbitmq", "mariadb"}
