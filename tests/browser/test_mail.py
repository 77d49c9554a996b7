"""E-mail in the browser, against the SMTP sink: a customer verifies their address with the
mailed code on the account page, changes it (verified again), then resets a forgotten password
with the mailed token."""

import re
import time
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import check_a11y, sign_in
from tests.conftest import TEST_ENV
from user_svc.mailsink import MailSink


@pytest.fixture
def sink(tmp_path):
    sink = MailSink(tmp_path, int(TEST_ENV["TTMS_SMTP_PORT"]))
    sink.start()
    yield sink
    sink.stop()


def mail_text(sink: MailSink, to: str, subject: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        for mail in sink.messages():
            if mail["To"] == to and subject in mail["Subject"]:
                return mail.get_body(preferencelist=("plain",)).get_content()
        assert time.monotonic() < deadline, f"no mail {subject!r} to {to}"
        time.sleep(0.2)


def test_verify_the_address_then_reset_a_forgotten_password(person, http, sink):
    username, email = f"b_{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}@example.com"
    http.post("/auth/register", {"username": username, "password": "password123",
                                 "email": email})
    page = person()
    sign_in(page, username, "password123", then="account")
    expect(page.get_by_text(f"{email} is not verified yet")).to_be_visible()
    code = re.search(r"\b(\d{6})\b", mail_text(sink, email, "verification")).group(1)
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text(f"{email} (verified).")).to_be_visible()
    check_a11y(page, "account e-mail")
    # A new address: unverified again, with a code of its own; one mail cannot be sent to is
    # refused, and the address stays as it was.
    other = f"c{uuid.uuid4().hex[:10]}@example.com"
    section = page.get_by_role("region", name="E-mail")
    section.get_by_label("E-mail").fill("o@;x.example")
    section.get_by_role("button", name="Save").click()
    expect(section.get_by_role("alert")).to_be_visible()
    expect(page.get_by_text(f"{email} (verified).")).to_be_visible()
    section.get_by_label("E-mail").fill(other)
    section.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"{other} is not verified yet")).to_be_visible()
    code = re.search(r"\b(\d{6})\b", mail_text(sink, other, "verification")).group(1)
    page.get_by_label("Verification code").fill(code)
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_text(f"{other} (verified).")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    page.goto("/#/signin")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("E-mail").fill(other)
    page.get_by_role("button", name="Mail me a reset token").click()
    expect(page.get_by_text("a reset token is on its way")).to_be_visible()
    token = re.search(r"^([A-Za-z0-9_-]{40,})\s*$",
                      mail_text(sink, other, "Reset"), re.M).group(1)
    page.get_by_label("Reset token").fill(token)
    page.get_by_label("New password").fill("a-new-password")
    page.get_by_role("button", name="Set the new password").click()
    expect(page.get_by_text("Your password is changed.")).to_be_visible()
    check_a11y(page, "password reset")
    sign_in(page, username, "a-new-password")
