"""The box office in the browser: a clerk finds a customer by username, sells seats on their
account and takes payment, finds their tickets, refunds one."""

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, shot, sign_in


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
