"""The web app is served by the gateway: the page at / (never cached), its files under a
versioned path (cached for a year), gzip when asked for, and /api/v1 as before."""

import re

import pytest

pytestmark = pytest.mark.asyncio


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
