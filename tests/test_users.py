"""Users through the whole path: HTTP → gateway → RabbitMQ → user_svc → MariaDB."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt

from tests.conftest import ADMIN_PASSWORD, TEST_ENV, sign_in


async def test_register_login_and_me(api):
    answer = await api.post("/auth/register", {"username": "alice.w", "password": "password123",
                                               "email": "alice@example.com"})
    assert answer.status == 201, answer.body
    user = answer.body
    assert user["role"] == "customer" and user["disabled"] is False
    assert user["created_at"].endswith("Z")
    login = await api.post("/auth/login", {"username": "alice.w", "password": "password123"})
    assert login.status == 200
    assert login.body["token_type"] == "bearer" and login.body["expires_in"] > 0
    me = await api.as_(login.body["access_token"]).get("/users/me")
    assert me.status == 200 and me.body == user


async def test_duplicate_username_is_409(api, customer):
    answer = await api.post("/auth/register", {"username": customer.user["username"],
                                               "password": "another-password"})
    assert answer.status == 409 and answer.code == "conflict"


async def test_the_same_registration_again_answers_with_the_same_account(api):
    body = {"username": "twice.sent", "password": "password123", "email": "t@example.com"}
    first = await api.post("/auth/register", body)
    again = await api.post("/auth/register", body)
    assert first.status == again.status == 201 and again.body == first.body


async def test_bad_credentials_same_answer_for_unknown_user(api, customer):
    wrong = await api.post("/auth/login", {"username": customer.user["username"],
                                           "password": "not-the-password"})
    unknown = await api.post("/auth/login", {"username": "nobody_here", "password": "whatever1"})
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body
    assert wrong.code == "unauthorized"


async def test_validation_errors_name_the_field(api):
    answer = await api.post("/auth/register", {"username": "x", "password": "short"})
    assert answer.status == 422 and answer.code == "validation_error"
    locs = {tuple(e["loc"]) for e in answer.body["errors"]}
    assert ("body", "username") in locs and ("body", "password") in locs
    assert answer.headers["Content-Type"].startswith("application/problem+json")


async def test_unknown_field_is_rejected(api):
    answer = await api.post("/auth/register", {"username": "bobby", "password": "password123",
                                               "is_admin": True})
    assert answer.status == 422
    assert answer.body["errors"][0]["loc"] == ["body", "is_admin"]


async def test_malformed_json_wrong_type_and_oversize_are_400(api):
    bad = await api.post("/auth/register", data=b"{nope",
                         headers={"Content-Type": "application/json"})
    assert bad.status == 400 and bad.code == "bad_request"
    text = await api.post("/auth/register", data=b"username=a",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert text.status == 400 and text.code == "bad_request"
    big = await api.post("/auth/register", data=b'{"username": "' + b"a" * 200_000 + b'"}',
                         headers={"Content-Type": "application/json"})
    assert big.status == 400 and big.code == "bad_request"
    not_utf8 = await api.post("/auth/register", data=b'{"username": "\xff\xfe"}',
                              headers={"Content-Type": "application/json"})
    assert not_utf8.status == 400


async def test_missing_forged_and_expired_tokens_are_401(api, customer):
    assert (await api.get("/users/me")).status == 401
    assert (await api.as_("not-a-token").get("/users/me")).status == 401
    claims = {"sub": str(customer.user["id"]), "role": "admin", "tv": 0,
              "iat": int(time.time()), "exp": int(time.time()) + 60}
    forged = jwt.encode(claims, "some-other-key-0123456789abcdef0123", algorithm="HS256")
    assert (await api.as_(forged).get("/users")).status == 401
    expired = jwt.encode({**claims, "role": "customer", "iat": int(time.time()) - 100,
                          "exp": int(time.time()) - 10},
                         TEST_ENV["TTMS_JWT_SECRET"], algorithm="HS256")
    answer = await api.as_(expired).get("/users/me")
    assert answer.status == 401 and answer.code == "unauthorized"
    unsigned = jwt.encode({**claims}, None, algorithm="none")
    assert (await api.as_(unsigned).get("/users")).status == 401
    basic = await api.get("/users/me", headers={"Authorization": "Basic YTpi"})
    assert basic.status == 401


async def test_customer_cannot_manage_users(customer):
    assert (await customer.get("/users")).code == "forbidden"
    assert (await customer.post("/users", {"username": "staff1", "password": "password123",
                                           "role": "admin"})).status == 403
    assert (await customer.patch("/users/1", {"role": "admin"})).status == 403
    assert (await customer.delete("/users/1")).status == 403


async def test_user_by_id_is_for_admin_or_self(customer, new_user, admin):
    other = await new_user()
    assert (await customer.get(f"/users/{customer.user['id']}")).status == 200
    assert (await customer.get(f"/users/{other.user['id']}")).status == 403
    assert (await admin.get(f"/users/{other.user['id']}")).body["username"] == \
        other.user["username"]
    assert (await admin.get("/users/999999999")).status == 404


async def test_admin_creates_staff_and_lists_users(admin, api):
    answer = await admin.post("/users", {"username": "boxoffice1", "password": "password123",
                                         "role": "clerk", "email": "bo@example.com"})
    assert answer.status == 201 and answer.body["role"] == "clerk"
    page = await admin.get("/users", params={"page": 1, "page_size": 100})
    assert page.status == 200 and page.body["page_size"] == 100
    assert page.body["total"] >= 2
    # Ordered by id, so the newest account is on the last page, whatever other tests made.
    last = (page.body["total"] + 99) // 100
    tail = await admin.get("/users", params={"page": last, "page_size": 100})
    assert answer.body in tail.body["items"]
    assert (await admin.get("/users", params={"page_size": 101})).status == 422
    assert (await admin.get("/users", params={"page": 0})).status == 422


async def test_admin_finds_accounts_by_part_of_a_name_or_address_and_by_role(admin, new_user):
    tag = uuid.uuid4().hex[:8]
    made = {}
    for name, role, email in ((f"Ada_{tag}", "clerk", None),
                              (f"bob_{tag}", "customer", f"ADA.{tag}@example.com"),
                              (f"cyp_{tag}", "customer", None), (f"cyx_{tag}", "manager", None)):
        answer = await admin.post("/users", {"username": name, "password": "password123",
                                             "role": role, **({"email": email} if email else {})})
        assert answer.status == 201, answer.body
        made[name] = answer.body

    async def found(**params) -> list[str]:
        answer = await admin.get("/users", params={"page_size": 100, **params})
        assert answer.status == 200, answer.body
        return [u["username"] for u in answer.body["items"]]

    # Any case, in the name or the address; then one role.
    assert await found(q=f"ada_{tag.upper()}") == [f"Ada_{tag}"]
    assert await found(q=f"ada.{tag}") == [f"bob_{tag}"]
    assert await found(q=tag, role="manager") == [f"cyx_{tag}"]
    assert sorted(await found(q=tag)) == sorted(u["username"] for u in made.values())
    # `_` and `%` are themselves, not wildcards: "cy_…" matches neither "cyp_…" nor "cyx_…".
    assert await found(q=f"cy_{tag}") == []
    assert await found(q="%" + tag) == []
    none = await admin.get("/users", params={"q": "no-such-" + tag})
    assert none.body["items"] == [] and none.body["total"] == 0
    assert (await admin.get("/users", params={"role": "owner"})).status == 422
    assert (await admin.get("/users", params={"q": ""})).status == 422
    assert (await (await new_user("manager")).get("/users", params={"q": tag})).status == 403


async def test_update_me_and_change_password(api, new_user):
    me = await new_user()
    answer = await me.patch("/users/me", {"email": "new@example.com"})
    assert answer.status == 200 and answer.body["email"] == "new@example.com"
    wrong = await me.post("/users/me/password", {"old_password": "nope-nope",
                                                 "new_password": "brand-new-pass"})
    assert wrong.status == 401
    done = await me.post("/users/me/password", {"old_password": me.password,
                                                "new_password": "brand-new-pass"})
    assert done.status == 204
    assert (await api.post("/auth/login", {"username": me.user["username"],
                                           "password": me.password})).status == 401
    again = await sign_in(api, me.user["username"], "brand-new-pass")
    assert again.user["id"] == me.user["id"]
    await _until_refused(me, "/users/me")  # tokens from before the change are revoked


async def _until_refused(client, path: str, within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await client.get(path)).status == 401:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the old token still worked {within}s after revocation")


async def test_disabled_user_tokens_stop_within_a_second(admin, new_user, api):
    user = await new_user()
    answer = await admin.patch(f"/users/{user.user['id']}", {"disabled": True})
    assert answer.status == 200 and answer.body["disabled"] is True
    await _until_refused(user, "/users/me")
    login = await api.post("/auth/login", {"username": user.user["username"],
                                           "password": user.password})
    assert login.status == 401
    await admin.patch(f"/users/{user.user['id']}", {"disabled": False})
    await sign_in(api, user.user["username"], user.password)


async def test_deleted_user_tokens_stop_within_a_second(admin, new_user, api):
    user = await new_user()
    assert (await admin.delete(f"/users/{user.user['id']}")).status == 204
    await _until_refused(user, "/users/me")
    assert (await admin.get(f"/users/{user.user['id']}")).status == 404
    assert (await api.post("/auth/login", {"username": user.user["username"],
                                           "password": user.password})).status == 401


async def test_role_change_revokes_old_tokens(admin, new_user, api):
    user = await new_user()
    answer = await admin.patch(f"/users/{user.user['id']}", {"role": "clerk"})
    assert answer.status == 200 and answer.body["role"] == "clerk"
    await _until_refused(user, "/users/me")
    promoted = await sign_in(api, user.user["username"], user.password)
    assert promoted.user["role"] == "clerk"


async def test_null_role_is_refused_and_admin_cannot_demote_self(admin):
    assert (await admin.patch(f"/users/{admin.user['id']}", {"role": None})).status == 422
    answer = await admin.patch(f"/users/{admin.user['id']}", {"role": "customer"})
    assert answer.status == 409
    assert (await admin.delete(f"/users/{admin.user['id']}")).status == 409


async def test_first_admin_comes_from_the_environment(api):
    client = await sign_in(api, "admin", ADMIN_PASSWORD)
    assert client.user["role"] == "admin"


async def test_login_attempts_are_rate_limited_per_username(api, new_user):
    user = await new_user()
    statuses = [
        (await api.post("/auth/login", {"username": user.user["username"],
                                        "password": "wrong-password"})).status
        for _ in range(15)]
    assert 429 in statuses
    limited = await api.post("/auth/login", {"username": user.user["username"],
                                             "password": user.password})
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
