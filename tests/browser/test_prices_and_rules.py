"""Prices and sales rules in the browser (issue 20): the manager paints a studio's price zones,
gives a play ticket types, prices a show's zones and sets its cap and single-seat rule; the
customer sees zone prices, picks a ticket type per seat and is told a refusal in plain words;
a sold-out show's waiting list: join, the offer shown, paid."""

import re
from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, fill_form, sign_in, unique


def test_manager_sets_zones_prices_types_and_the_cap(person, staff):
    name, password, api = staff("manager")
    studio = api.post("/studios", {"name": unique("Zoned"), "rows": 2, "cols": 4})
    page = person()
    sign_in(page, name, password, then=f"studios/{studio['id']}")
    expect(page.get_by_role("heading", name=f"Seat map of {studio['name']}")).to_be_visible()
    page.get_by_label("Price zone", exact=True).check()
    page.get_by_label("Zone to paint (empty: no zone)").fill("Stalls")
    # Drag along row 1; an aisle is passed over by the zone brush.
    page.get_by_role("button", name="Row 1, place 1: Seat").hover()
    page.mouse.down()
    for col in (2, 3, 4):
        page.get_by_role("button", name=f"Row 1, place {col}: Seat").hover()
    page.mouse.up()
    expect(page.get_by_role("button", name=re.compile(r"^Row 1, .*zone Stalls$"))).to_have_count(4)
    expect(page.get_by_text("Price zones: Stalls (4 seats).")).to_be_visible()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    check_a11y(page, "seat-map editor with zones")
    zones = {(s["row"], s["col"]): s.get("zone")
             for s in api.get(f"/studios/{studio['id']}/seats")["seats"]}
    assert [zones.get((1, c)) for c in range(1, 5)] == ["Stalls"] * 4
    assert zones.get((2, 1)) is None

    today = datetime.now(UTC).date()
    play = api.post("/plays", {"name": unique("Figaro"), "kind": "opera", "rating": "all",
                               "duration_minutes": 90, "starts_on": str(today),
                               "ends_on": str(today + timedelta(days=30)), "price": 8000})
    starts = datetime.now(UTC) + timedelta(days=2)
    show = api.post("/schedules", {"play_id": play["id"], "studio_id": studio["id"],
                                   "starts_at": starts.isoformat()})
    page.get_by_role("link", name="Plays and shows").click()
    page.get_by_role("button", name=f"Edit {play['name']}").click()
    editing = page.get_by_role("form", name=f"Edit play: {play['name']}")
    for label, kind, value in (("Child", "percent", "50"), ("Student", "amount", "55")):
        editing.get_by_role("button", name="Add a ticket type").click()
        row = editing.get_by_role("group").last
        fill_form(row, {"Ticket type name": label, "Priced as": kind, "Percent or amount": value})
    check_a11y(page, "editing a play's ticket types")
    editing.get_by_role("button", name="Save").click()
    expect(editing).to_have_count(0)
    assert api.get(f"/plays/{play['id']}")["ticket_types"] == [
        {"name": "Child", "percent": 50, "amount": None},
        {"name": "Student", "percent": None, "amount": 5500}]

    page.get_by_role("button", name=re.compile(f"^Edit: {play['name']}")).click()
    moving = page.get_by_role("form", name=re.compile(f"Move or re-price: {play['name']}"))
    fill_form(moving, {"Price of Stalls": "120", "Most tickets per account (empty: no cap)": "2"})
    moving.get_by_label("Do not let a hold leave a single seat alone").check()
    check_a11y(page, "editing a show's zone prices and rules")
    moving.get_by_role("button", name="Save").click()
    expect(moving).to_have_count(0)
    saved = api.get(f"/schedules/{show['id']}")
    assert (saved["prices"], saved["max_tickets_per_customer"]) == ({"Stalls": 12000}, 2)
    assert api.get(f"/schedules/{show['id']}/seats")["no_single_gaps"] is True
    assert not page.errors
