"""The web app is served by the gateway: the page at / (never cached), its files under a
versioned path (cached for a year), gzip when asked for, and /api/v1 as before."""

import json
import re
from pathlib import Path

from messages import errors


async def test_page_and_assets_are_served_with_caching_and_gzip(api):
    async with api.session.get(api.base + "/", headers={"Accept-Encoding": "gzip"}) as page:
        html = await page.text()
        assert page.status == 200
        assert page.headers["Content-Type"].startswith("text/html")
        assert page.headers["Cache-Control"] == "no-cache"
        assert page.headers.get("Content-Encoding") == "gzip"
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = re.search(r'src="(/app/[0-9a-f]{12}/app\.js)"', html)
    assert script, html
    async with api.session.get(api.base + script[1],
                               headers={"Accept-Encoding": "gzip"}) as asset:
        body = await asset.text()
        assert asset.status == 200
        assert asset.headers["Content-Type"].startswith("text/javascript")
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert asset.headers.get("Content-Encoding") == "gzip"
        assert "import" in body
    version = script[1].split("/")[2]
    async with api.session.get(f"{api.base}/app/{version}/pages/show.js",
                               headers={"Accept-Encoding": "identity"}) as plain:
        assert plain.status == 200 and "Content-Encoding" not in plain.headers


async def test_unknown_assets_are_404_problems_and_the_api_is_unchanged(api):
    async with api.session.get(api.base + "/app/000000000000/nope.js") as missing:
        assert missing.status == 404
        assert missing.headers["Content-Type"].startswith("application/problem+json")
    async with api.session.get(api.base + "/app/000000000000/index.html") as page:
        assert page.status == 404
    async with api.session.get(api.base + "/app/000000000000/../../gateway/app.py") as up:
        assert up.status == 404
    answer = await api.get("/plays")
    assert answer.status == 200 and "items" in answer.body


def test_every_problem_code_and_error_type_the_api_sends_has_words_in_every_language():
    """The web app words a refusal by its `code` ("problem.<code>", or the door page's
    "door.<code>"; busy, unavailable and timed out by status), and a field error by its `type`
    ("invalid.<type>"): every code, and every type of the API reference's table, has a string
    in each catalogue (a misspelt key left a Chinese page saying the API's English)."""
    web = Path(__file__).parent.parent / "gateway" / "web"
    catalogues = {path.name: json.loads(path.read_text())
                  for path in (web / "strings").glob("*.json")}
    by_status = {"rate_limited", "service_unavailable", "timeout"}
    reference = (Path(__file__).parent.parent / "docs" / "API.md").read_text()
    table = reference.split("| `type` | `ctx` | where |")[1].split("\n\n")[0]
    types = set(re.findall(r"^\| ((?:`\w+`(?: / )?)+) \|", table, re.M))
    names = {name for cell in types for name in re.findall(r"`(\w+)`", cell)}
    assert {"schedule_overlap", "seat_unavailable", "down"} <= names
    for name, strings in catalogues.items():
        unworded = [code for code in errors.BY_CODE if code not in by_status
                    and f"problem.{code}" not in strings and f"door.{code}" not in strings]
        assert not unworded, (name, unworded)
        assert not [k for k in strings if k.startswith("problem.")
                    and k[len("problem."):] not in errors.BY_CODE], name
        assert not [t for t in names if f"invalid.{t}" not in strings], name


def test_every_audit_action_is_on_the_audit_page_with_words_in_every_language():
    from messages.contracts.order import AuditAction

    web = Path(__file__).parent.parent / "gateway" / "web"
    page = (web / "pages" / "audit.js").read_text()
    listed = re.search(r"const ACTIONS = \[([^\]]*)\]", page)[1]
    assert re.findall(r'"(\w+)"', listed) == [a.value for a in AuditAction]
    for path in (web / "strings").glob("*.json"):
        strings = json.loads(path.read_text())
        assert not [a for a in AuditAction if f"audit.{a.value}" not in strings], path.name
