"""Operations endpoints, CORS, docs, and start-up refusals."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


async def test_healthz_readyz_and_metrics(api):
    assert (await api.get("/healthz")).status == 200
    ready = await api.get("/readyz")
    assert ready.status == 200 and set(ready.body["services"]) == {
        "user", "studio", "play", "ticket", "order"}
    metrics = await api.get("/metrics")
    assert metrics.status == 200
    assert "ttms_http_requests_total" in metrics.body and "ttms_rpc_seconds" in metrics.body


async def test_openapi_document_and_swagger_ui_are_served_locally(api):
    spec = await api.get("/openapi.json")
    assert spec.status == 200 and spec.body["openapi"] == "3.1.0"
    register = spec.body["paths"]["/api/v1/auth/register"]["post"]
    assert register["requestBody"]["content"]["application/json"]["schema"]
    assert "201" in register["responses"] and "422" in register["responses"]
    page = await api.get("/docs")
    assert page.status == 200 and "/docs/static/swagger-ui-bundle.js" in page.body
    assert "http" not in page.body.split("<body>")[1].replace("/api/v1", "")  # no CDN
    bundle = await api.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status == 200


async def test_cors_preflight_and_headers(api):
    preflight = await api.request("OPTIONS", "/auth/login", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, authorization"})
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    answer = await api.get("/users/me", headers={"Origin": "https://shop.example"})
    assert answer.status == 401 and "Access-Control-Allow-Origin" in answer.headers


async def test_unknown_route_and_method_are_problems(api):
    missing = await api.get("/no/such/route")
    assert missing.status == 404 and missing.code == "not_found"
    wrong = await api.request("PUT", "/users/me")
    assert wrong.status == 405 and wrong.headers["Content-Type"].startswith(
        "application/problem+json")


def test_production_refuses_development_secrets():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTMS_")}
    env.update(TTMS_ENV="production", TTMS_NAMESPACE="ttms_prodcheck")
    for module in ("user_svc", "gateway"):
        done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode != 0
        assert "development defaults are refused" in done.stderr


def test_launcher_runs_on_the_standard_library_alone():
    """`make deps` runs the launcher with the system python3 before the venv exists: with
    site-packages off (``-S``) it must still start, and it imports no TTMS package (so what a
    package ``__init__`` imports can never break it)."""
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    helped = subprocess.run([python, "-S", "-m", "launcher", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0, helped.stderr
    assert "up,down,status,logs,deps" in helped.stdout
    ours = ("messages", "gateway", "user_svc", "studio_svc", "play_svc", "ticket_svc",
            "order_svc", "migrations", "bench", "chaos")
    loaded = subprocess.run(
        [python, "-S", "-c", "import sys, launcher; print(' '.join(sorted(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert loaded.returncode == 0, loaded.stderr
    assert not [m for m in loaded.stdout.split() if m.split(".")[0] in ours]
