"""The audit log (issue 20.6): staff actions on money and access, from the events, read by
admins only through GET /audit, and never changed through the API."""

from __future__ import annotations

from tests.catalogue import make_show
from tests.test_door import bought
from tests.test_sales import hold
from tests.waiting import wait_for


async def _entries(admin, **query) -> list[dict]:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    answer = await admin.get(f"/audit?page_size=100&{q}")
    assert answer.status == 200, answer.body
    return answer.body["items"]


async def test_staff_sales_refunds_show_changes_and_account_changes_are_audited(
        admin, manager, clerk, new_user):
    buyer = await new_user()
    show = await make_show(manager, price=3000)
    # a customer's own hold and refund are not staff actions
    own = await hold(buyer, show, (1, 1))
    paid = await buyer.post(f"/reservations/{own.body['id']}/pay", {})
    assert (await buyer.post(f"/tickets/{paid.body['tickets'][0]['id']}/refund")).status == 200
    # a clerk's sale on the buyer's account, paid, then refunded by the clerk
    sale = await hold(clerk, show, (2, 1), customer_id=buyer.user["id"])
    assert sale.status == 201, sale.body
    sold = await clerk.post(f"/reservations/{sale.body['id']}/pay", {})
    ticket = sold.body["tickets"][0]
    assert (await clerk.post(f"/tickets/{ticket['id']}/refund")).status == 200
    # a clerk reissues a code of the buyer's; the buyer's own reissue is no staff action
    [kept] = (await bought(buyer, show, (3, 1)))
    assert (await buyer.post(f"/tickets/{kept['id']}/reissue")).status == 200
    assert (await clerk.post(f"/tickets/{kept['id']}/reissue")).status == 200
    # an admin changes the buyer's role; a manager re-prices and cancels another show
    assert (await admin.patch(f"/users/{buyer.user['id']}", {"role": "clerk"})).status == 200
    other = await make_show(manager)
    assert (await manager.patch(f"/schedules/{other['id']}", {"price": 1234})).status == 200
    assert (await manager.delete(f"/schedules/{other['id']}")).status == 204
    # a manager re-prices a play; a rename alone is not a change of money
    assert (await manager.patch(f"/plays/{show['play_id']}", {"price": 3300})).status == 200
    assert (await manager.patch(f"/plays/{other['play_id']}", {"name": f"Renamed {other['id']}"}
                                )).status == 200

    async def all_there():
        found = await _entries(admin)
        subjects = {(e["action"], e["subject"]) for e in found}
        wanted = {("clerk_sale", f"reservation {sale.body['id']}"),
                  ("refund", f"ticket {ticket['id']}"),
                  ("user_changed", f"user {buyer.user['id']}"),
                  ("show_changed", f"schedule {other['id']}"),
                  ("show_cancelled", f"schedule {other['id']}"),
                  ("play_repriced", f"play {show['play_id']}"),
                  ("code_reissued", f"ticket {kept['id']}")}
        return found if wanted <= subjects else None
    found = await wait_for(all_there)
    by = {(e["action"], e["subject"]): e for e in found}
    clerk_sale = by[("clerk_sale", f"reservation {sale.body['id']}")]
    assert clerk_sale["actor_id"] == clerk.user["id"] and clerk_sale["actor_role"] == "clerk"
    assert clerk_sale["address"] == "127.0.0.1"
    assert clerk_sale["details"]["customer_id"] == buyer.user["id"]
    assert clerk_sale["details"]["total"] == 3000
    refund = by[("refund", f"ticket {ticket['id']}")]
    assert refund["actor_id"] == clerk.user["id"] and refund["details"]["buyer_id"] == \
        buyer.user["id"]
    changed = by[("user_changed", f"user {buyer.user['id']}")]
    assert changed["actor_id"] == admin.user["id"] and changed["details"]["role"] == "clerk"
    assert by[("show_changed", f"schedule {other['id']}")]["details"]["price"] == 1234
    assert by[("show_cancelled", f"schedule {other['id']}")]["actor_id"] == manager.user["id"]
    repriced = by[("play_repriced", f"play {show['play_id']}")]
    assert repriced["actor_id"] == manager.user["id"] and repriced["details"]["price"] == 3300
    assert repriced["details"]["changed"] == ["price"]
    if other["play_id"] != show["play_id"]:
        assert ("play_repriced", f"play {other['play_id']}") not in by
    reissued = [e for e in found if e["subject"] == f"ticket {kept['id']}"]
    assert [(e["actor_id"], e["details"]["code_version"]) for e in reissued] == [
        (clerk.user["id"], 3)]  # the buyer's own (version 2) is not there
    # the buyer's own hold and refund left no entry
    assert ("clerk_sale", f"reservation {own.body['id']}") not in by
    assert ("refund", f"ticket {paid.body['tickets'][0]['id']}") not in by
    # filters
    refunds = await _entries(admin, action="refund", actor_id=clerk.user["id"])
    assert refunds and all(e["action"] == "refund" and e["actor_id"] == clerk.user["id"]
                           for e in refunds)


async def test_only_admins_read_the_audit_log_and_nobody_edits_it(admin, manager, clerk):
    assert (await manager.get("/audit")).code == "forbidden"
    assert (await clerk.get("/audit")).code == "forbidden"
    for method in ("post", "patch", "delete"):
        send = getattr(admin, method)
        answer = await (send("/audit", {}) if method != "delete" else send("/audit"))
        assert answer.status == 405, (method, answer.status, answer.body)
