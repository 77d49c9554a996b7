"""Price zones on the seat map (issue 20.1): the legend names each zone's price and each seat
says its zone and price."""

from playwright.sync_api import expect


def test_the_seat_map_shows_zone_prices(person, new_show, manager_api):
    show = new_show(rows=2, cols=3, price=8000, seats=[
        {"row": 1, "col": c, "kind": "seat", "zone": "Stalls"} for c in (1, 2, 3)])
    manager_api.patch(f"/schedules/{show['id']}", {"prices": {"Stalls": 9000}})
    page = person()
    page.goto(f"/#/show/{show['id']}")
    expect(page.get_by_text("Stalls: CN¥90.00 · Other seats: CN¥80.00")).to_be_visible()
    expect(page.get_by_role("button", name="Row 1, seat 2", exact=True)).to_have_attribute(
        "title", "Stalls · CN¥90.00")
    expect(page.get_by_role("button", name="Row 2, seat 2", exact=True)).to_have_attribute(
        "title", "CN¥80.00")
    assert not page.errors
