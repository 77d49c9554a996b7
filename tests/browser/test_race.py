"""Two customers race for a seat in the browser; a hold runs out (the test system holds seats
for TTMS_HOLD_SECONDS=6, tests/conftest.py)."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, shot, sign_in, wait_for_seats


def test_two_customers_race_and_the_winners_hold_expires(person, new_show, staff, http):
    show = new_show(rows=3, cols=4)
    path = f"show/{show['id']}"
    winner, loser = person(), person()
    # The loser's live seat map is cut off during the race, so that it cannot see the seat go
    # before its own hold is refused (it would then hold its other seat alone); it comes back
    # (EventSource reconnects by itself) once the refusal is checked.
    loser.route("**/seats/stream", lambda route: route.abort())
    for page in (winner, loser):
        name, password, _ = staff("customer")
        sign_in(page, name, password, then=path)
    winner.get_by_role("button", name="Row 1, seat 2").click()
    loser.get_by_role("button", name="Row 1, seat 2").click()
    loser.get_by_role("button", name="Row 1, seat 3").click()
    winner.get_by_role("button", name="Hold seats").click()
    expect(winner.get_by_role("timer")).to_be_visible()
    loser.get_by_role("button", name="Hold seats").click()

    # The loser is told which seat, in words (from the 409, then again by the map read after
    # it), and the seat turns unavailable on their map.
    expect(loser.get_by_role("alert").filter(has_text="Row 1, seat 2")).to_have_text(
        re.compile(r"Row 1, seat 2 was (just )?taken by someone else"))
    lost = loser.get_by_role("button", name="Row 1, seat 2")
    expect(lost).to_have_attribute("aria-disabled", "true")
    expect(lost).to_have_attribute("aria-pressed", "false")
    expect(loser.get_by_role("timer")).to_have_count(0)
    check_a11y(loser, "race lost")
    shot(loser, "race-lost")
    # Nothing half held: the loser's other seat is still for sale.
    # (Read before the winner's 6 s hold could run out; after the loser's attempt ended.)
    wait_for_seats(http, show["id"], {(1, 2): "held"}, seconds=4)
    seats = {(s["row"], s["col"]): s["status"]
             for s in http.get(f"/schedules/{show['id']}/seats")["seats"]}
    assert seats[(1, 3)] == "available"
    loser.unroute("**/seats/stream")

    # The winner does not pay: the countdown ends, the page says so, the seat is free again
    # on both pages (without a reload).
    expect(winner.get_by_role("alert")).to_have_text(
        "Your hold expired; the seats are available again.", timeout=20_000)
    expect(winner.get_by_role("timer")).to_have_count(0)
    expect(winner.get_by_role("button", name="Row 1, seat 2")).not_to_have_attribute(
        "aria-disabled", "true", timeout=20_000)
    expect(lost).not_to_have_attribute("aria-disabled", "true", timeout=20_000)
    shot(winner, "hold-expired")


def test_cancel_hold_frees_the_seats(person, new_show, staff, http):
    show = new_show(rows=2, cols=3)
    name, password, _ = staff("customer")
    page = person()
    sign_in(page, name, password, then=f"show/{show['id']}")
    page.get_by_role("button", name="Row 2, seat 2").click()
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("timer")).to_be_visible()
    shot(page, "before-cancel-hold")
    page.get_by_role("button", name="Cancel hold").click()
    expect(page.get_by_role("timer")).to_have_count(0)
    expect(page.get_by_role("button", name="Row 2, seat 2")).not_to_have_attribute(
        "aria-disabled", "true")
    wait_for_seats(http, show["id"], {(2, 2): "available"})
