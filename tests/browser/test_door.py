"""The door in the browser: a customer's printable ticket shows its QR code and gets a new one
(the old code is then refused); a clerk types the code at the door page and sees a big
Admitted, then a Refused for the second scan."""

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, shot, sign_in


def test_printable_ticket_and_the_door_admit_once(person, new_show, staff):
    show = new_show(rows=3, cols=3, days=0.02)  # about 30 minutes away: the door is open
    customer, customer_password, customer_api = staff("customer")
    held = customer_api.post("/reservations", {"schedule_id": show["id"],
                                               "seats": [{"row": 2, "col": 2}]})
    paid = customer_api.post(f"/reservations/{held['id']}/pay", {})
    ticket_id = paid["tickets"][0]["id"]
    code = customer_api.get(f"/tickets/{ticket_id}")["code"]

    page = person()
    sign_in(page, customer, customer_password, then=f"ticket/{ticket_id}")
    expect(page.get_by_role("heading", name=show["play_name"])).to_be_visible()
    expect(page.get_by_role("img", name=f"QR code of ticket {ticket_id}")).to_be_visible()
    expect(page.get_by_text("Row 2, seat 2")).to_be_visible()
    check_a11y(page, "printable ticket")
    shot(page, "ticket-printable")
    # The code was shared: a new one (two clicks), and the old one stops admitting.
    expect(page.get_by_text(code, exact=True)).to_be_visible()
    page.get_by_role("button", name="New code").click()
    page.get_by_role("button", name="Replace the code? The old one will no longer admit.").click()
    expect(page.get_by_role("status")).to_contain_text("This ticket has a new code")
    old, code = code, customer_api.get(f"/tickets/{ticket_id}")["code"]
    assert code != old
    expect(page.get_by_text(code, exact=True)).to_be_visible()
    check_a11y(page, "a ticket with a new code")

    clerk, password, _ = staff("clerk")
    door = person()
    sign_in(door, clerk, password, then="door")
    expect(door.get_by_role("heading", name="Check-in at the door")).to_be_visible()
    door.get_by_label("Ticket code").fill(old)
    door.get_by_role("button", name="Check in").click()
    expect(door.get_by_role("status")).to_contain_text("Not a valid ticket code.")
    door.get_by_label("Ticket code").fill(code)
    door.get_by_role("button", name="Check in").click()
    answer = door.get_by_role("status")
    expect(answer).to_contain_text("Admitted")
    expect(answer).to_contain_text("Row 2, seat 2")
    check_a11y(door, "door")
    shot(door, "door-admitted", doc=True)
    door.get_by_label("Ticket code").fill(code)
    door.get_by_role("button", name="Check in").click()
    expect(answer).to_contain_text("Refused")
    expect(answer).to_contain_text("Already checked in")
    door.get_by_label("Ticket code").fill("not a code")
    door.get_by_role("button", name="Check in").click()
    expect(answer).to_contain_text("Not a valid ticket code.")
