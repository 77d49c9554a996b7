"""GET /customers?username= — the box office finds the customer it sells to (clerk+)."""

import pytest

pytestmark = pytest.mark.asyncio


async def test_staff_find_a_customer_by_username(api, clerk, manager, admin, customer):
    name = customer.user["username"]
    for staff in (clerk, manager, admin):
        answer = await staff.get("/customers", params={"username": name})
        assert answer.status == 200, answer.body
        assert answer.body["id"] == customer.user["id"]
        assert answer.body["role"] == "customer"
    missing = await clerk.get("/customers", params={"username": name + "_nobody"})
    assert missing.status == 404 and missing.code == "not_found"
    # Staff accounts are not customers: a clerk cannot look them up here.
    staff_name = manager.user["username"]
    assert (await clerk.get("/customers", params={"username": staff_name})).status == 404
    assert (await clerk.get("/customers")).status == 422


async def test_customers_and_anonymous_may_not_look_customers_up(api, customer, new_user):
    other = await new_user("customer")
    name = other.user["username"]
    assert (await customer.get("/customers", params={"username": name})).status == 403
    assert (await api.get("/customers", params={"username": name})).status == 401
