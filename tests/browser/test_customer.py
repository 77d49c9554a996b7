"""The customer's journey in a real browser: register, sign in, browse, pick seats on the
seat map, hold, pay, see tickets and orders, refund, change password; and the seat map's
keyboard and accessibility contract."""

import re
from datetime import datetime, timedelta

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, fill_form, shot, sign_in, unique, wait_for_seats


def test_customer_registers_buys_refunds_and_changes_password(person, new_show, http):
    play_name = unique("Hamlet")
    show = new_show(rows=4, cols=6, play_name=play_name, price=8000)
    page = person()
    page.goto("/")
    expect(page.get_by_role("heading", name="What's on")).to_be_visible()
    check_a11y(page, "what's on")

    username = unique("web_customer")
    page.get_by_role("link", name="Register").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Register").click()
    # The API's field error is shown next to the field it names.
    expect(page.get_by_role("alert")).not_to_be_empty()
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    check_a11y(page, "register with errors")
    page.get_by_label("Password").fill("password123")
    expect(page.get_by_label("Mail written in")).to_have_value("en")  # the page's language
    page.get_by_label("Mail written in").select_option("zh")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    me = page.evaluate("""fetch('/api/v1/users/me', {headers: {Authorization: 'Bearer ' +
        sessionStorage.getItem('ttms.token')}}).then((r) => r.json())""")
    assert me["language"] == "zh", me

    # Browse: search by name finds the play; its show opens the seat map.
    page.get_by_label("Search plays").fill(play_name)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=play_name)).to_be_visible()
    page.get_by_role("link", name=re.compile(show["studio_name"])).click()
    expect(page.get_by_role("heading", name=play_name)).to_be_visible()
    seat = page.get_by_role("button", name="Row 2, seat 3", exact=True)
    expect(seat).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_text("Price per seat: CN¥80.00")).to_be_visible()
    check_a11y(page, "seat map")

    # Keyboard: focus a seat, move right with the arrow key, select with Space.
    seat.click()
    expect(seat).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("ArrowRight")
    right = page.get_by_role("button", name="Row 2, seat 4", exact=True)
    expect(right).to_be_focused()
    page.keyboard.press("Space")
    expect(right).to_have_attribute("aria-pressed", "true")
    shot(page, "customer-seat-map", doc=True)

    page.get_by_role("button", name="Hold seats").click()
    timer = page.get_by_role("timer")
    expect(timer).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(seat).to_have_attribute("aria-disabled", "true")
    shot(page, "customer-hold")
    page.get_by_label("Payment reference").fill("PAY-123")
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_text("Paid. Your tickets:")).to_be_visible()
    check_a11y(page, "paid")

    page.get_by_role("link", name="See my tickets").click()
    expect(page.get_by_role("heading", name="Tickets", exact=True)).to_be_visible()
    tickets = page.get_by_role("region", name="Tickets", exact=True)
    expect(tickets.get_by_role("row").filter(has_text=play_name)).to_have_count(2)
    orders = page.get_by_role("region", name="Orders")
    expect(orders.get_by_role("row").filter(has_text=play_name).filter(
        has_text="CN¥160.00")).to_have_count(1)
    check_a11y(page, "my tickets")
    shot(page, "customer-tickets")
    tickets.get_by_role("row").filter(has_text="Row 2, seat 3").get_by_role(
        "button", name="Refund").click()
    expect(tickets.get_by_role("row").filter(has_text="Row 2, seat 3").filter(
        has_text="Refunded")).to_have_count(1)
    wait_for_seats(http, show["id"], {(2, 3): "available", (2, 4): "sold"})

    page.get_by_label("Current password").fill("password123")
    page.get_by_label("New password").fill("password456")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed.")).to_be_visible()
    page.reload()  # still signed in (the page took a new token)
    expect(page.get_by_role("heading", name="Tickets", exact=True)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, username, "password456")
    assert not page.errors


def test_seat_map_names_states_and_keyboard(person, new_show, staff):
    # Row 1: seat, aisle, seat, seat; row 2: broken second; 16 places, 14 seats.
    show = new_show(rows=4, cols=4, seats=[{"row": 1, "col": 2, "kind": "aisle"},
                                           {"row": 2, "col": 2, "kind": "broken"}])
    username, password, api = staff("customer")
    api.post("/reservations", {"schedule_id": show["id"], "seats": [{"row": 3, "col": 3}]})
    page = person()
    sign_in(page, username, password, then=f"show/{show['id']}")
    seats = page.get_by_role("button", name=re.compile(r"^Row \d, seat \d$"))
    expect(seats).to_have_count(14)
    expect(page.get_by_role("button", name="Row 1, seat 2")).to_have_count(0)
    expect(page.get_by_role("button", name="Row 2, seat 2")).to_have_count(0)
    expect(page.get_by_role("button", name="Row 3, seat 3")).to_have_attribute(
        "aria-disabled", "true")
    first = page.get_by_role("button", name="Row 1, seat 1")
    first.focus()
    page.keyboard.press("ArrowRight")  # over the aisle
    expect(page.get_by_role("button", name="Row 1, seat 3")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    taken = page.get_by_role("button", name="Row 3, seat 3")
    expect(taken).to_be_focused()
    page.keyboard.press("Space")  # taken: not selectable
    expect(taken).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_role("button", name="Hold seats")).to_be_disabled()
    for name in ["Row 1, seat 1", "Row 1, seat 3", "Row 2, seat 1", "Row 2, seat 3"]:
        page.get_by_role("button", name=name).click()
    expect(page.get_by_text("4 selected:")).to_be_visible()
    expect(page.get_by_text("Price per seat: CN¥80.00")).to_be_visible()
    expect(page.get_by_text("Total CN¥320.00")).to_be_visible()
    check_a11y(page, "seat map with states")
    page.get_by_role("button", name="Row 1, seat 1").click()  # again: deselected
    expect(page.get_by_text("3 selected:")).to_be_visible()
    # At most 10: the eleventh seat is refused, in words.
    for name in ["Row 1, seat 1", "Row 1, seat 4", "Row 2, seat 4", "Row 3, seat 1",
                 "Row 3, seat 2", "Row 3, seat 4", "Row 4, seat 1"]:
        page.get_by_role("button", name=name).click()
    expect(page.get_by_text("10 selected:")).to_be_visible()
    eleventh = page.get_by_role("button", name="Row 4, seat 2")
    eleventh.click()
    expect(eleventh).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_role("alert")).to_have_text("You can hold at most 10 seats at once.")
    shot(page, "seat-map-limit")


def test_signing_in_returns_to_the_page_and_a_401_sends_to_sign_in_and_back(
        person, new_show, staff):
    show = new_show(rows=2, cols=3)
    name, password, api = staff("customer")
    page = person()
    page.goto(f"/#/show/{show['id']}")  # anonymous: the map is public
    page.get_by_role("button", name="Row 1, seat 1").click()
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    fill_form(page, {"Username": name, "Password": "not-the-password"}, submit="Sign in")
    expect(page.get_by_role("alert")).to_have_text("wrong username or password")
    shot(page, "sign-in-refused")
    fill_form(page, {"Password": password}, submit="Sign in")
    expect(page).to_have_url(re.compile(f"#/show/{show['id']}$"))
    assert page.evaluate("sessionStorage.getItem('ttms.token')")  # never a cookie
    assert page.context.cookies() == []
    # The show page has loaded all it asks for with the token before the token is revoked
    # (else that load, not the click below, is the request answered 401).
    expect(page.get_by_role("heading", name=show["play_name"])).to_be_visible()
    expect(page.get_by_role("button", name="Row 1, seat 2")).to_be_visible()

    # Every token is revoked (a password change elsewhere): the page's next request (a
    # click: the seat map follows a public stream and no longer polls) is a 401, and the
    # person is asked to sign in again.
    api.post("/users/me/password", {"old_password": password, "new_password": "password789"})
    # force: the map may be redrawn under the click (a live update, or the page already told
    # of the revocation by another request); the click need not wait for it to keep still.
    page.get_by_role("button", name="Row 1, seat 2").click(force=True)
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_text("Your session has ended.")).to_be_visible()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill("password789")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(f"#/show/{show['id']}$"))
    expect(page.get_by_role("button", name="Row 1, seat 2")).to_have_attribute(
        "aria-pressed", "false")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('ttms.token')") is None
    check_a11y(page, "sign in")


def test_browse_filters_by_name_kind_and_date(person, new_show):
    tag = unique("Fest")
    opera = new_show(play_name=f"{tag} Aida", kind="opera", days=5)
    movie = new_show(play_name=f"{tag} Metropolis", kind="movie", days=1)
    page = person()
    page.goto("/")
    page.get_by_label("Search plays").fill(tag)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=opera["play_name"])).to_be_visible()
    expect(page.get_by_role("heading", name=movie["play_name"])).to_be_visible()
    page.get_by_label("Kind").select_option("opera")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=opera["play_name"])).to_be_visible()
    expect(page.get_by_role("heading", name=movie["play_name"])).to_have_count(0)
    shot(page, "browse-filtered")
    page.get_by_label("Kind").select_option("")
    in_three_days = (datetime.now() + timedelta(days=3)).strftime("%Y-%m-%d")
    page.get_by_label("From").fill(in_three_days)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=opera["play_name"])).to_be_visible()
    expect(page.get_by_role("heading", name=movie["play_name"])).to_have_count(0)
    page.get_by_label("From").fill("")
    page.get_by_label("To").fill(in_three_days)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("heading", name=movie["play_name"])).to_be_visible()
    expect(page.get_by_role("heading", name=opera["play_name"])).to_have_count(0)
    page.get_by_label("Search plays").fill(tag + "-nothing")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No upcoming shows match.")).to_be_visible()
