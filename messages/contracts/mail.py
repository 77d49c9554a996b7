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
    pass


class PasswordReset(PasswordResetBody, Command, name="user.password_reset"):
    pass


class PasswordResetConfirm(PasswordResetConfirmBody, Command,
                           name="user.password_reset_confirm"):
    pass
