"""user_svc's e-mail commands: verifying an account's address, resetting a password."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from messages.contracts.base import Command, Strict
from messages.contracts.user import Email, Password


class VerifyEmailBody(Strict):
    code: Annotated[str, Field(pattern=r"^[0-9]{6}$")]


class PasswordResetBody(Strict):
    email: Email


class PasswordResetConfirmBody(Strict):
    token: Annotated[str, Field(min_length=16, max_length=100)]
    new_password: Password


class VerifyEmail(VerifyEmailBody, Command, name="user.verify_email"):
    """Signed in: → User, the address verified by the code mailed to it; 422 if the code is
    wrong or expired (five wrong tries use it up). Publishes ``user.updated``."""


class PasswordReset(PasswordResetBody, Command, name="user.password_reset"):
    """Anyone: the same answer whether or not an account has the address; an enabled account
    with it verified is mailed a reset token, good for 30 minutes and once."""


class PasswordResetConfirm(PasswordResetConfirmBody, Command,
                           name="user.password_reset_confirm"):
    """Anyone with the mailed token: sets the password; 422 if the token is invalid, used or
    expired. Every token of the account stops working: publishes ``user.access_changed``."""
