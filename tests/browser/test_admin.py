"""The admin in the browser: create a staff account, change a role, disable a user whose
open page is then signed out at its next action, delete an account."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, fill_form, shot, sign_in, unique
from tests.conftest import ADMIN_PASSWORD


def test_admin_creates_staff_changes_a_role_and_disables_a_user(person, staff, admin_api):
    customer, customer_password, _ = staff("customer")
    victim = person()
    sign_in(victim, customer, customer_password, then="account")
    expect(victim.get_by_role("heading", name="Tickets", exact=True)).to_be_visible()

    page = person()
    # Every person the page saves as signed in, in order: only the admin, never a guessed
    # role first (a customer's menu, and a staff page opened meanwhile refused).
    page.add_init_script("""window.savedUsers = [];
        const setItem = Storage.prototype.setItem;
        Storage.prototype.setItem = function (key, value) {
          if (key === "ttms.user") window.savedUsers.push(JSON.parse(value).role);
          return setItem.call(this, key, value);
        };""")
    sign_in(page, "admin", ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()
    assert page.evaluate("window.savedUsers") == ["admin"]
    clerk = unique("web_clerk")
    fill_form(page.get_by_role("form", name="New staff account"),
              {"Username": clerk, "Password": "password123", "Role": "clerk"}, submit="Create")
    role = page.get_by_label(f"Role of {clerk}")
    expect(role).to_have_value("clerk")
    role.select_option("manager")
    expect(page.get_by_text(f"Saved {clerk}.")).to_be_visible()
    users = {u["username"]: u for u in admin_api.get("/users?page_size=100&page=1")["items"]}
    found = users.get(clerk) or next(
        u for p in range(2, 50) for u in admin_api.get(f"/users?page_size=100&page={p}")["items"]
        if u["username"] == clerk)
    assert found["role"] == "manager"
    check_a11y(page, "users")
    shot(page, "admin-users")

    page.get_by_role("button", name=f"Disable {customer}").click()
    expect(page.get_by_role("button", name=f"Enable {customer}")).to_be_visible()
    # The customer's open page: the next action is answered 401 and they are signed out.
    victim.get_by_role("link", name="What's on").click()
    expect(victim.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(victim.get_by_text("Your session has ended.")).to_be_visible()
    expect(victim.get_by_role("button", name="Sign out")).to_have_count(0)

    # Delete the new account: two clicks (the first asks), then it is gone; one's own account
    # has no Delete.
    delete = page.get_by_role("button", name=f"Delete {clerk}")
    delete.click()
    expect(delete).to_have_text("Delete this account? It can never sign in again.")
    delete.click()
    expect(page.get_by_text(f"Deleted {clerk}.")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text=clerk)).to_have_count(0)
    expect(page.get_by_role("button", name="Delete admin", exact=True)).to_have_count(0)
    assert clerk not in {u["username"] for p in range(1, 50)
                         for u in admin_api.get(f"/users?page_size=100&page={p}")["items"]}
    check_a11y(page, "a user deleted")

    # Find an account among many: part of its name, in any case, and a role.
    search = page.get_by_role("search", name="Find accounts")
    fill_form(search, {"Username or e-mail contains": customer.upper(), "Role": "customer"},
              submit="Find")
    expect(page.get_by_role("row")).to_have_count(2)  # the header and the one customer
    expect(page.get_by_role("button", name=f"Enable {customer}")).to_be_visible()
    fill_form(search, {"Role": "admin"}, submit="Find")
    expect(page.get_by_text("No account matches.")).to_be_visible()
    check_a11y(page, "a search of accounts")

    # The audit log: the admin's own changes, by name, and a filter by action.
    page.get_by_role("link", name="Audit log").click()
    deleted = page.get_by_role("row").filter(has_text=re.compile(rf"user {found['id']}\b")
                                             ).filter(has_text="Account deleted")
    expect(deleted).to_have_count(1)
    expect(deleted).to_contain_text("admin (admin)")
    expect(deleted).to_contain_text("127.0.0.1")
    check_a11y(page, "the audit log")
    shot(page, "admin-audit")
    page.get_by_label("Action").select_option("user_deleted")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"#/audit\?action=user_deleted$"))
    actions = page.locator("tbody tr td:nth-child(2)")
    expect(actions.first).to_have_text("Account deleted")
    assert set(actions.all_inner_texts()) == {"Account deleted"}
    assert not page.errors
