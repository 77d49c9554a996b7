"""Languages (English, Simplified Chinese: switchable on every page, remembered, dates and
money per language), failures (429, 503, 504, unreachable: said, with Retry), the customer
journey and every staff page on a phone (390×844), and a 100×100 hall's seat map (timed with
performance.now())."""

import json
import re

from playwright.sync_api import expect

from tests.browser.conftest import (
    SHOTS,
    check_a11y,
    fill_form,
    shot,
    sign_in,
    wait_for_seats,
)
from tests.conftest import ADMIN_PASSWORD


def test_chinese_switchable_everywhere_and_remembered(person, new_show, staff):
    show = new_show(rows=3, cols=4, price=8000)
    name, password, _ = staff("customer")
    page = person()
    sign_in(page, name, password, then=f"show/{show['id']}")
    expect(page.get_by_role("button", name="Row 2, seat 3")).to_be_visible()
    page.get_by_label("Language").select_option("zh-CN")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    seat = page.get_by_role("button", name="2排3座", exact=True)
    expect(seat).to_be_visible()
    expect(page.get_by_role("button", name="锁定座位")).to_be_visible()
    expect(page.get_by_text("每座票价：¥80.00")).to_be_visible()
    # The date in Chinese: e.g. "2026年12月2日 14:33".
    expect(page.get_by_text(re.compile(r"\d{4}年\d{1,2}月\d{1,2}日"))).to_be_visible()
    check_a11y(page, "seat map in Chinese")
    shot(page, "seat-map-zh")
    page.reload()  # remembered
    expect(page.get_by_role("button", name="2排3座", exact=True)).to_be_visible()
    page.get_by_role("link", name="我的票").click()
    expect(page.get_by_role("heading", name="票", exact=True)).to_be_visible()
    # The API's problems are said in Chinese too (by their code).
    page.get_by_role("button", name="退出").click()
    fill_form(page, {"用户名": name, "密码": "wrong-password"}, submit="登录")
    expect(page.get_by_role("alert")).to_have_text("用户名或密码错误，或登录已失效。")
    check_a11y(page, "sign in in Chinese")
    fill_form(page, {"密码": password}, submit="登录")
    page.get_by_role("link", name="我的票").click()
    expect(page.get_by_role("heading", name="票", exact=True)).to_be_visible()
    page.get_by_label("语言").select_option("en")
    expect(page.get_by_role("heading", name="Tickets", exact=True)).to_be_visible()
    # Both catalogues have the same keys.
    missing = page.evaluate("""async () => {
        const base = document.querySelector('script[type=module]').src.replace(/app\\.js$/, '');
        const en = await (await fetch(base + 'strings/en.json')).json();
        const zh = await (await fetch(base + 'strings/zh-CN.json')).json();
        return [Object.keys(en).filter(k => !(k in zh)), Object.keys(zh).filter(k => !(k in en))];
    }""")
    assert missing == [[], []]


def test_field_errors_are_said_in_chinese(person):
    """The API's field errors are English; the Chinese page words each by its `type`, with
    the numbers from its `ctx`. The English page keeps the API's words."""
    page = person()
    page.goto("/#/register")
    page.get_by_label("Language").select_option("zh-CN")
    fill_form(page, {"用户名": "no spaces", "密码": "short", "电子邮件（可选）": "a b@example.com"},
              submit="注册")
    expect(page.get_by_role("alert")).to_have_text("部分字段有误，请检查。")
    expect(page.get_by_label("密码", exact=True)).to_have_accessible_description(
        "至少 8 个字符。")
    expect(page.get_by_label("用户名")).to_have_accessible_description("格式不正确。")
    expect(page.get_by_label("电子邮件（可选）")).to_have_accessible_description("格式不正确。")
    check_a11y(page, "field errors in Chinese")
    page.get_by_label("语言").select_option("en")
    fill_form(page, {"Password": "short"}, submit="Register")
    expect(page.get_by_label("Password", exact=True)).to_have_accessible_description(
        "String should have at least 8 characters")


def problem(status: int, code: str, detail: str) -> dict:
    return {"status": status, "content_type": "application/problem+json",
            "headers": {"Retry-After": "2"} if status == 429 else {},
            "body": json.dumps({"type": f"urn:ttms:problem:{code}", "title": code,
                                "status": status, "detail": detail, "code": code})}


def test_failures_are_said_with_retry_never_blank(person, new_show):
    new_show(rows=2, cols=2)
    page = person()
    cases = [
        (lambda route: route.fulfill(**problem(429, "rate_limited", "too many")),
         "The server is busy (too many requests). Retry in 2 s."),
        (lambda route: route.fulfill(**problem(503, "service_unavailable", "down")),
         "The service is unavailable for a moment. Retry shortly."),
        (lambda route: route.fulfill(**problem(504, "timeout", "slow")),
         "The server took too long to answer. Retry."),
        (lambda route: route.abort("connectionrefused"),
         "The server cannot be reached. Check the connection and retry."),
    ]
    for index, (answer, words) in enumerate(cases):
        page.route("**/api/v1/plays*", answer)
        if index == 0:
            page.goto("/")
        else:
            page.reload()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text(words)
        if index == 0:
            check_a11y(page, "failure")
            shot(page, "failure-retry")
        page.unroute("**/api/v1/plays*")
        alert.get_by_role("button", name="Retry").click()
        expect(page.get_by_role("alert")).to_have_count(0)
        expect(page.get_by_text(re.compile(r"plays with upcoming shows|No upcoming shows"))
               ).to_be_visible()


def test_customer_journey_on_a_phone(person, new_show, staff, http):
    show = new_show(rows=6, cols=12)
    name, password, _ = staff("customer")
    page = person(width=390, height=844)
    sign_in(page, name, password)
    page.get_by_label("Search plays").fill(show["play_name"])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=re.compile(show["studio_name"])).click()
    check_a11y(page, "seat map on a phone")
    page.get_by_role("button", name="Row 3, seat 12").click()
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("timer")).to_be_visible()
    page.get_by_label("Payment reference").fill("PHONE-1")
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_text("Paid. Your tickets:")).to_be_visible()
    shot(page, "phone-paid")
    # The page itself does not scroll sideways (the seat map scrolls inside its own box).
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    wait_for_seats(http, show["id"], {(3, 12): "sold"})


def test_a_100_by_100_hall_draws_and_answers_quickly(person, new_show, staff):
    show = new_show(rows=100, cols=100)
    name, password, _ = staff("customer")
    page = person()
    page.goto("/")
    started = page.evaluate("performance.now()")
    sign_in(page, name, password, then=f"show/{show['id']}")
    last = page.get_by_role("button", name="Row 100, seat 100")
    expect(last).to_be_visible()
    drawn = page.evaluate("performance.now()") - started
    draw_ms = page.evaluate("document.querySelector('seat-map').drawMs")
    timings = page.evaluate("""async () => {
        const times = [];
        const names = ['Row 50, seat 50', 'Row 1, seat 1', 'Row 100, seat 100', 'Row 73, seat 12',
                       'Row 50, seat 51'];
        for (const name of names) {
            const seat = document.querySelector(`button[aria-label="${name}"]`);
            const t0 = performance.now();
            seat.click();
            await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
            times.push(performance.now() - t0);
        }
        return times;
    }""")
    expect(page.get_by_text("5 selected:")).to_be_visible()
    expect(page.get_by_role("button", name="Row 73, seat 12")).to_have_attribute(
        "aria-pressed", "true")
    page.get_by_role("button", name="Row 50, seat 50").focus()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("button", name="Row 51, seat 50")).to_be_focused()
    SHOTS.mkdir(exist_ok=True)
    report = {"places": 10_000, "sign_in_and_draw_ms": round(drawn),
              "draw_ms": round(draw_ms, 1),
              "select_to_next_frame_ms": [round(t, 1) for t in timings]}
    (SHOTS / "seat-map-100x100.json").write_text(json.dumps(report, indent=1))
    print(f"\n100x100 seat map: {report}")
    shot(page, "seat-map-100x100")


def test_staff_pages_on_a_phone(person, new_show):
    """Every staff page fits a phone's width (wide tables and the seat maps scroll inside their
    own box) and passes axe there."""
    show = new_show(rows=8, cols=20)
    page = person(width=390, height=844)
    sign_in(page, "admin", ADMIN_PASSWORD)  # an admin may open every staff page
    for path, heading in (("box-office", "Box office"), ("door", "Check-in at the door"),
                          ("studios", "Studios"),
                          (f"studios/{show['studio_id']}", "Seat map of"),
                          ("programme", "Plays and shows"), ("dashboard", "Box-office dashboard"),
                          ("users", "Users"), ("audit", "Audit log")):
        page.evaluate(f"location.hash = '#/{path}'")
        expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        page.wait_for_load_state("networkidle")
        check_a11y(page, f"{path} on a phone")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide on a 390 px phone"
    assert not page.errors
