"""Browser tests: headless Chromium (Debian's ``chromium`` package, installed by ``make
chromium``) driven by Playwright for Python, against the system tests/conftest.py starts.

One browser for all of them; each test gets fresh contexts (one per person) from ``person``.
Pages are found by role and accessible name. ``shot(page, name)`` saves a screenshot into
tests/browser/screenshots/ (ignored by git), and into docs/screenshots/ too when
TTMS_SCREENSHOTS=1 (``make screenshots``). ``check_a11y(page)`` runs axe-core (bundled by
axe-playwright-python) and fails on any violation of impact serious or critical.
"""

from __future__ import annotations

import itertools
import os
import shutil
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import ADMIN_PASSWORD, ROOT

playwright_api = pytest.importorskip("playwright.sync_api")
playwright_api.expect.set_options(timeout=15_000)

CHROMIUM = os.environ.get("TTMS_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parent / "screenshots"
DOC_SHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 15_000
_names = itertools.count()


@pytest.fixture(scope="package")
def browser(system):
    # Package scope: started once for all browser tests, and closed before the async tests
    # run (the sync API keeps its own event loop marked running in this thread while open).
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (Debian's chromium package)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def person(browser, system):
    """``person()`` → a new page in its own context (its own sessionStorage): one person."""
    contexts = []

    def make(width: int = 1280, height: int = 900, locale: str = "en-US"):
        context = browser.new_context(viewport={"width": width, "height": height},
                                      locale=locale, base_url=system.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()


def shot(page, name: str, doc: bool = False) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    if doc and os.environ.get("TTMS_SCREENSHOTS") == "1":
        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOC_SHOTS / f"{name}.png"), full_page=False)


def check_a11y(page, what: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, f"{what}: " + "; ".join(
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes'][:3]]}"
        for v in bad)


# -- the API, for setting up what a journey needs (plain HTTP, no browser) -----------------

class Api:
    def __init__(self, base: str, token: str | None = None) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base + "/api/v1" + path, method=method, headers=headers,
            data=orjson.dumps(body) if body is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return orjson.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.call("PATCH", path, body)

    def sign_in(self, username: str, password: str) -> Api:
        token = self.post("/auth/login", {"username": username, "password": password})
        return Api(self.base, token["access_token"])


def unique(prefix: str) -> str:
    """A name no other test of the session makes (tests/conftest.py's users are role_pid_n)."""
    return f"w{prefix}_{os.getpid()}_{next(_names)}"


@pytest.fixture(scope="session")
def http(system) -> Api:
    return Api(system.url)


@pytest.fixture(scope="session")
def admin_api(http) -> Api:
    return http.sign_in("admin", ADMIN_PASSWORD)


@pytest.fixture(scope="session")
def staff(http, admin_api):
    """``staff("manager")`` → (username, password, Api) of a new account of that role."""

    def make(role: str) -> tuple[str, str, Api]:
        username, password = unique(role), "password123"
        if role == "customer":
            http.post("/auth/register", {"username": username, "password": password})
        else:
            admin_api.post("/users", {"username": username, "password": password,
                                      "role": role})
        return username, password, http.sign_in(username, password)

    return make


@pytest.fixture(scope="session")
def manager_api(staff) -> Api:
    return staff("manager")[2]


@pytest.fixture(scope="session")
def new_show(manager_api):
    """``new_show(rows, cols, play_name=…, days=1)`` → the schedule of a new show, in a studio
    of its own (so shows never clash), starting ``days`` from now."""
    counter = itertools.count(1)

    def make(rows: int = 5, cols: int = 8, play_name: str | None = None, days: float = 1,
             price: int = 8000, kind: str = "drama", seats: list | None = None) -> dict:
        studio = manager_api.post("/studios", {"name": unique("Hall"), "rows": rows,
                                               "cols": cols})
        if seats:
            manager_api.patch(f"/studios/{studio['id']}/seats", {"seats": seats})
        today = datetime.now(UTC).date()
        play = manager_api.post("/plays", {
            "name": play_name or unique("Play"), "kind": kind, "rating": "all",
            "duration_minutes": 90, "starts_on": str(today), "price": price,
            "ends_on": str(today + timedelta(days=60))})
        starts = datetime.now(UTC) + timedelta(days=days, minutes=next(counter))
        return manager_api.post("/schedules", {"play_id": play["id"], "studio_id": studio["id"],
                                               "starts_at": starts.isoformat()})

    return make


def sign_in(page, username: str, password: str, then: str = "") -> None:
    page.goto("/#/signin" + (f"?next={then}" if then else ""))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def fill_form(scope, values: dict[str, str], submit: str | None = None) -> None:
    """Fill the fields labelled by ``values``' keys inside ``scope`` (a page or a form; a
    ``<select>`` gets the option of that value), then click the ``submit`` button if named."""
    for label, value in values.items():
        control = scope.get_by_label(label, exact=True)
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)
    if submit:
        scope.get_by_role("button", name=submit, exact=True).click()


def wait_for_seats(http: Api, schedule_id: int, expected: dict[tuple[int, int], str],
                   seconds: float = 10) -> None:
    """Until the public seat map shows ``expected`` ({(row, col): status}); it may be up to
    0.25 s old (the gateway shares its answers), more on a loaded machine."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        seats = {(s["row"], s["col"]): s["status"]
                 for s in http.get(f"/schedules/{schedule_id}/seats")["seats"]}
        seen = {key: seats.get(key) for key in expected}
        if seen == expected:
            return
        assert time.monotonic() < deadline, f"seats {seen}, expected {expected}"
        time.sleep(0.25)
