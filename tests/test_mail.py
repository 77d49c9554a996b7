"""E-mail through the whole path (issue 15 part 3) against a real SMTP server: the local sink
(``user_svc/mailsink.py``) on the port TEST_ENV gives user_svc, started and stopped here.
Sign-up verification, password reset, ticket mail whose QR code decodes to a code that checks
in, and mail that waits while the SMTP server is down, then arrives once."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event, text

from tests.catalogue import make_show
from tests.conftest import TEST_ENV, service_database
from tests.test_door import SOON, bought, decode_qr_svg
from tests.test_orders import NOW, Sale, Show, bus  # noqa: F401 (bus: a fixture)
from user_svc import mailer, mails, password_reset
from user_svc.mailsink import MailSink

SMTP_PORT = int(TEST_ENV["TTMS_SMTP_PORT"])


@pytest.fixture(scope="module")
def sink(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mail")
    sink = MailSink(folder, SMTP_PORT)
    sink.start()
    yield sink
    sink.stop()


def address() -> str:
    return f"u{uuid.uuid4().hex[:12]}@example.com"


def text_of(mail) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()


async def mails_to(sink: MailSink, to: str, count: int = 1, within: float = 20.0) -> list:
    deadline = time.monotonic() + within
    while True:
        found = [m for m in sink.messages() if m["To"] == to]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{count} mail(s) to {to} never came: {found}"
        await asyncio.sleep(0.2)


async def register(api, sink, language: str | None = None, verify: bool = True):
    """A new customer with a (verified) address: (client, address, password)."""
    username, email, password = f"m_{uuid.uuid4().hex[:10]}", address(), "password123"
    body = {"username": username, "password": password, "email": email}
    if language:
        body["language"] = language
    created = await api.post("/auth/register", body)
    assert created.status == 201, created.body
    assert created.body["email_verified"] is False
    signed_in = await api.post("/auth/login", {"username": username, "password": password})
    client = api.as_(signed_in.body["access_token"], created.body)
    if verify:
        [mail] = await mails_to(sink, email)
        code = re.search(r"\b(\d{6})\b", text_of(mail)).group(1)
        verified = await client.post("/users/me/email/verify", {"code": code})
        assert verified.status == 200 and verified.body["email_verified"], verified.body
    return client, email, password


async def test_sign_up_mails_a_code_that_verifies_the_address_once(api, sink):
    client, email, _ = await register(api, sink, verify=False)
    [mail] = await mails_to(sink, email)
    assert "verification" in mail["Subject"].lower()
    assert mail.get_body(preferencelist=("html",)) is not None  # HTML with a text part
    code = re.search(r"\b(\d{6})\b", text_of(mail)).group(1)
    wrong = "000000" if code != "000000" else "111111"
    refused = await client.post("/users/me/email/verify", {"code": wrong})
    assert refused.status == 422 and refused.code == "validation_error", refused.body
    assert refused.body["errors"][0]["loc"] == ["body", "code"]
    ok = await client.post("/users/me/email/verify", {"code": code})
    assert ok.status == 200 and ok.body["email_verified"] is True, ok.body
    assert (await client.post("/users/me/email/verify", {"code": code})).status == 422
    # A new address is unverified again and gets a code of its own.
    other = address()
    changed = await client.patch("/users/me", {"email": other, "language": "zh"})
    assert changed.status == 200 and changed.body["email_verified"] is False
    [zh] = await mails_to(sink, other)
    assert "验证码" in zh["Subject"]


async def test_a_code_stops_after_five_wrong_tries(api, sink):
    client, email, _ = await register(api, sink, verify=False)
    [mail] = await mails_to(sink, email)
    code = re.search(r"\b(\d{6})\b", text_of(mail)).group(1)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert (await client.post("/users/me/email/verify", {"code": wrong})).status == 422
    assert (await client.post("/users/me/email/verify", {"code": code})).status == 422


async def test_password_reset_end_to_end(api, sink):
    client, email, password = await register(api, sink)
    username = client.user["username"]
    unknown = await api.post("/auth/password-reset", {"email": address()})
    first = await api.post("/auth/password-reset", {"email": email})
    assert unknown.status == first.status == 202 and unknown.body == first.body
    second = await api.post("/auth/password-reset", {"email": email})
    assert second.status == 202
    resets = await mails_to(sink, email, count=3)  # the code, then two resets
    tokens = [re.search(r"^([A-Za-z0-9_-]{40,})\s*$", text_of(m), re.M).group(1)
              for m in resets if "reset" in m["Subject"].lower()]
    assert len(tokens) == 2 and tokens[0] != tokens[1]

    done = await api.post("/auth/password-reset/confirm",
                          {"token": tokens[1], "new_password": "brand-new-password"})
    assert done.status == 204, done.body
    # The other token, and the same one again, no longer work; nor do old access tokens.
    for token in tokens:
        refused = await api.post("/auth/password-reset/confirm",
                                 {"token": token, "new_password": "yet-another-password"})
        assert refused.status == 422 and refused.code == "validation_error", refused.body
    await asyncio.sleep(0.5)
    assert (await client.get("/users/me")).status == 401
    assert (await api.post("/auth/login", {"username": username,
                                           "password": password})).status == 401
    assert (await api.post("/auth/login", {"username": username,
                                           "password": "brand-new-password"})).status == 200


async def test_a_reset_request_does_the_same_work_whether_or_not_the_address_is_known(
        api, sink):
    """No account discovery by timing: answering a request runs the same statements, with the
    same parameters but the address, for a verified address, an unknown one and an unverified
    one (against the test system's own user database); only the mail sender, later, tells
    them apart: the known address gets its mail, the others none."""
    _, known, _ = await register(api, sink)
    _, unverified, _ = await register(api, sink, verify=False)
    ran: list[tuple[str, list]] = []
    work = {}
    async with service_database("user") as db:
        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def record(conn, cursor, statement, parameters, context, executemany):
            ran.append((statement, sorted(str(v) for v in (parameters or ())
                                          if "@" not in str(v) and ":" not in str(v))))

        for email in (known, address(), unverified):
            ran.clear()
            await password_reset.request(SimpleNamespace(app=SimpleNamespace(db=db)), email)
            work[email] = list(ran)
    assert work[known] and len(set(map(repr, work.values()))) == 1, work
    resets = [m for m in await mails_to(sink, known, count=2) if "reset" in m["Subject"].lower()]
    await mails_to(sink, unverified)  # its verification code
    await asyncio.sleep(1.5)  # the sender runs every 0.3 s here: a reset mail would be here
    assert len(resets) == 1 and [m["Subject"] for m in sink.messages()
                                 if m["To"] == unverified and "reset" in m["Subject"].lower()] == []


async def test_ticket_mail_carries_qr_codes_that_check_in(api, sink, manager, clerk):
    client, email, _ = await register(api, sink, language="zh")
    show = await make_show(manager, starts_in=SOON)
    tickets = await bought(client, show, (1, 1), (1, 2))
    mails = await mails_to(sink, email, count=2)
    [sold] = [m for m in mails if "门票" in m["Subject"]]
    svgs = [part for part in sold.iter_attachments()
            if part.get_content_type() == "image/svg+xml"]
    assert len(svgs) == 2
    codes = [decode_qr_svg(part.get_content() if isinstance(part.get_content(), str)
                           else part.get_content().decode()) for part in svgs]
    for code in codes:
        assert code in text_of(sold)
        admitted = await clerk.post("/checkins", {"code": code})
        assert admitted.status == 200, admitted.body
    assert sorted(a["id"] for a in tickets) == sorted(
        int(re.search(r"ticket-(\d+)", p.get_filename()).group(1)) for p in svgs)


async def test_a_reissued_code_is_mailed_with_its_qr_code(api, sink, manager, clerk):
    client, email, _ = await register(api, sink)
    show = await make_show(manager, starts_in=SOON)
    [ticket] = await bought(client, show, (2, 2))
    await mails_to(sink, email, count=2)  # the verification code, the tickets
    new = (await client.post(f"/tickets/{ticket['id']}/reissue")).body["code"]
    mails = await mails_to(sink, email, count=3)
    [reissued] = [m for m in mails if m["Subject"] == f"New code for ticket {ticket['id']}"]
    assert new in text_of(reissued)
    [svg] = [part for part in reissued.iter_attachments()
             if part.get_content_type() == "image/svg+xml"]
    content = svg.get_content()
    assert decode_qr_svg(content if isinstance(content, str) else content.decode()) == new
    assert (await clerk.post("/checkins", {"code": new})).status == 200


async def test_buyers_are_reminded_once_before_their_show(api, sink, manager):
    """TTMS_REMINDER_MINUTES (a day) before the show each buyer is mailed once, with their
    valid tickets bought before then; a ticket refunded, and a buyer who bought after the
    reminder time, are not. The show starts a day and a few seconds from now: the tickets are
    bought before its reminder time, which comes while the test waits."""
    reminded, reminded_email, _ = await register(api, sink, language="zh")
    late, late_email, _ = await register(api, sink)
    lead = timedelta(minutes=int(TEST_ENV.get("TTMS_REMINDER_MINUTES", 1440)), seconds=10)
    show = await make_show(manager, starts_in=lead)
    kept, refunded = await bought(reminded, show, (1, 1), (1, 2))
    assert (await reminded.post(f"/tickets/{refunded['id']}/refund")).status == 200
    await mails_to(sink, reminded_email, count=3)  # the code, the tickets, the refund
    await asyncio.sleep(11)  # past the reminder time: the late buyer buys after it
    await bought(late, show, (2, 2))
    mails = await mails_to(sink, reminded_email, count=4, within=20)
    [reminder] = [m for m in mails if m["Subject"].startswith("即将开演")]
    assert show["play_name"] in reminder["Subject"]
    assert "1 排 1 座" in text_of(reminder) and "1 排 2 座" not in text_of(reminder)
    await asyncio.sleep(2)  # two more sweeps: still one reminder, and none for the late buyer
    assert len([m for m in sink.messages() if m["To"] == reminded_email
                and m["Subject"].startswith("即将开演")]) == 1
    assert not [m for m in sink.messages() if m["To"] == late_email
                and m["Subject"].startswith("Soon:")]
    async with service_database("ticket") as db, db.read() as conn:
        assert (await conn.execute(text("SELECT reminded_at FROM schedules WHERE id = :id"),
                                   {"id": show["id"]})).scalar() is not None


async def test_smtp_down_for_thirty_seconds_every_mail_arrives_once(api, sink, manager):
    buyers = [await register(api, sink) for _ in range(4)]
    show = await make_show(manager, starts_in=SOON)
    sink.stop()
    try:
        for n, (client, _, _) in enumerate(buyers):
            await bought(client, show, (2, n + 1))
        await asyncio.sleep(30)
        assert not [m for m in sink.messages() if "ticket" in m["Subject"].lower()
                    and m["To"] in {b[1] for b in buyers}]
    finally:
        restarted = MailSink(sink.folder, SMTP_PORT)
        restarted.start()
        sink.controller = restarted.controller
    for _, email, _ in buyers:
        await mails_to(sink, email, count=2, within=30)
    await asyncio.sleep(3)  # anything sent twice would be here by now
    for _, email, _ in buyers:
        got = [m for m in sink.messages() if m["To"] == email]
        assert len(got) == 2, [m["Subject"] for m in got]  # the code, the tickets: once each


async def test_a_mail_that_cannot_be_sent_never_holds_up_the_others(api, sink):
    """An address the contract refuses now (a `;` is an RFC 5322 special) but an older
    release stored: aiosmtplib refuses it before any server sees it. A batch's worth of such
    mails once made every round of the sender fail and roll back, so no mail after them ever
    went; now each is marked failed with why, and the mails behind them go."""
    poison = "o@;x.example"
    refused = await api.post("/auth/register", {"username": f"m_{uuid.uuid4().hex[:10]}",
                                                "password": "password123", "email": poison})
    assert refused.status == 422 and refused.body["errors"][0]["loc"] == ["body", "email"]
    tag = uuid.uuid4().hex
    async with service_database("user") as db:
        async with db.transaction() as tx:
            for n in range(mailer.BATCH + 5):
                await mails.queue(tx, f"poison:{tag}:{n}", poison, "en", "verify",
                                  username="old", email=poison, code="123456")
        _, email, _ = await register(api, sink)  # waits for its code, and uses it
        async with db.read() as conn:
            rows = (await conn.execute(text(
                "SELECT status, last_error FROM mails WHERE mail_key LIKE :tag"),
                {"tag": f"poison:{tag}:%"})).all()
    assert len(rows) == mailer.BATCH + 5
    assert {r.status for r in rows} == {"failed"}, rows
    assert all("not permitted in an SMTP mailbox" in r.last_error for r in rows), rows[0]


async def test_password_reset_requests_are_limited_per_address(api):
    email = address()
    limit = int(TEST_ENV["TTMS_LOGIN_ATTEMPTS_PER_MINUTE"])
    answers = [await api.post("/auth/password-reset", {"email": email})
               for _ in range(limit + 2)]
    assert [a.status for a in answers[:limit]] == [202] * limit
    assert answers[-1].status == 429 and answers[-1].code == "rate_limited"
    assert "Retry-After" in answers[-1].headers
    # Another address is not held back by this one.
    assert (await api.post("/auth/password-reset", {"email": address()})).status == 202


async def test_a_redelivered_sale_event_mails_once(api, sink, bus):  # noqa: F811
    """ticket.sold delivered three times (same event id, as a broker redelivery or a replay
    would): one mail."""
    client, email, _ = await register(api, sink)
    show = Show(starts_at=NOW + timedelta(days=2))
    sale = Sale(show, client.user["id"], [(1, 1)])
    sold = sale.sold()
    await bus.publish(sold, sold)
    await mails_to(sink, email, count=2)
    await bus.publish(sold)
    await asyncio.sleep(3)
    assert len([m for m in sink.messages() if m["To"] == email]) == 2  # the code, the tickets
