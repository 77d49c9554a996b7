"""The box office in the browser: a clerk finds a customer by username, sells seats on their
account and takes payment, finds their tickets, refunds one; puts a customer on a sold-out
show's waiting list and takes payment for the seats it holds for them."""

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, fill_form, shot, sign_in
from tests.browser.test_prices_and_rules import _sold_out


def test_clerk_sells_on_a_customers_account_and_refunds(person, new_show, staff, http):
    show = new_show(rows=4, cols=5)
    customer, _, customer_api = staff("customer")
    clerk, password, _ = staff("clerk")
    page = person()
    sign_in(page, clerk, password)
    expect(page.get_by_role("heading", name="Box office")).to_be_visible()
    page.get_by_label("Customer username").fill(customer + "_nobody")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_text(f"No customer named {customer}_nobody.")).to_be_visible()
    page.get_by_label("Customer username").fill(customer)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_text(f"Selling to {customer}.")).to_be_visible()
    page.get_by_label("Show").select_option(str(show["id"]))
    page.get_by_role("button", name="Row 3, seat 2").click()
    page.get_by_role("button", name="Row 3, seat 3").click()
    check_a11y(page, "box office")
    page.get_by_role("button", name="Hold seats").click()
    expect(page.get_by_role("heading", name=f"Held for {customer}")).to_be_visible()
    page.get_by_label("Payment reference").fill("CASH-0042")
    shot(page, "box-office-sale", doc=True)
    page.get_by_role("button", name="Pay").click()
    expect(page.get_by_text("Paid. Your tickets:")).to_be_visible()

    tickets = page.get_by_role("region", name=f"{customer}'s tickets")
    expect(tickets.get_by_role("button", name="Refund")).to_have_count(2)
    sold = customer_api.get("/tickets")["items"]
    assert sorted((t["row"], t["col"]) for t in sold) == [(3, 2), (3, 3)]
    tickets.get_by_role("row").filter(has_text="Row 3, seat 2").get_by_role(
        "button", name="Refund").click()
    expect(tickets.get_by_role("button", name="Refund")).to_have_count(1)
    statuses = {(t["row"], t["col"]): t["status"] for t in customer_api.get("/tickets")["items"]}
    assert statuses == {(3, 2): "refunded", (3, 3): "sold"}


def test_clerk_puts_a_customer_on_the_waiting_list_and_takes_payment_for_the_offer(
        person, new_show, staff):
    """A customer at the window of a sold-out show: the clerk puts them in line; when a seat
    comes back it is held on their account, and the box office shows it to be paid."""
    show, owner, sold = _sold_out(new_show, staff, cols=1)
    customer, _, customer_api = staff("customer")
    clerk, password, _ = staff("clerk")
    page = person()
    sign_in(page, clerk, password)
    page.get_by_label("Customer username").fill(customer)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_text(f"Selling to {customer}.")).to_be_visible()
    page.get_by_label("Show").select_option(str(show["id"]))
    waitlist = page.get_by_role("region", name="Waiting list")
    expect(waitlist).to_contain_text(f"This show is sold out. Put {customer} on the waiting list")
    fill_form(waitlist, {"Number of seats": "1"},
              submit=f"Put {customer} on the waiting list")
    expect(waitlist.get_by_role("status")).to_have_text(
        f"{customer} is number 1 in line (seats wanted: 1).")
    check_a11y(page, "the box office's waiting list")
    shot(page, "box-office-waitlist")
    [entry] = customer_api.get("/waitlist")["items"]  # on the customer's account
    assert (entry["schedule_id"], entry["status"]) == (show["id"], "waiting")

    owner.post(f"/tickets/{sold['tickets'][0]['id']}/refund")
    offer = page.get_by_role("region", name=f"Held for {customer} from the waiting list")
    expect(offer).to_be_visible()  # the offer lasts a hold's length (6 s here): pay at once
    offer.get_by_role("button", name="Pay").click()
    expect(page.get_by_text("Paid. Your tickets:")).to_be_visible()
    assert [t["status"] for t in customer_api.get(f"/tickets?schedule_id={show['id']}")[
        "items"]] == ["sold"]
    tickets = page.get_by_role("region", name=f"{customer}'s tickets")
    expect(tickets.get_by_role("button", name="Refund")).to_have_count(1)
    expect(waitlist.get_by_role("status")).to_have_text(
        f"{customer} bought the seats held from the waiting list.")
    assert not page.errors
