"""The show page's seat map follows the seat-map stream (issue 14): another buyer's hold
appears without a reload and well before the old 3 s poll would have shown it."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import sign_in


def test_the_seat_map_follows_the_stream(person, new_show, staff):
    show = new_show(rows=2, cols=3)
    page = person()
    name, password, _ = staff("customer")
    with page.expect_request(re.compile(r"/api/v1/schedules/\d+/seats/stream$")):
        sign_in(page, name, password, then=f"show/{show['id']}")
    seat = page.get_by_role("button", name="Row 1, seat 2")
    expect(seat).not_to_have_attribute("aria-disabled", "true")
    _, _, other = staff("customer")
    other.post("/reservations", {"schedule_id": show["id"], "seats": [{"row": 1, "col": 2}]})
    expect(seat).to_have_attribute("aria-disabled", "true", timeout=1_500)
