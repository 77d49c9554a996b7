"""E-mail: account address verification and password reset (API.md § E-mail) → user_svc."""

from gateway.routes.base import Route, Who
from messages.contracts import mail as m
from messages.contracts import user as c

TAG = "E-mail"

ROUTES = [
    Route("POST", "/users/me/email/verify", m.VerifyEmail, Who.signed_in,
          "Verify your e-mail address with the code mailed to it", TAG,
          body=m.VerifyEmailBody, response=c.User,
          rules="A wrong or expired code is 422 `validation_error` naming `code`; after 5 "
                "wrong tries the code is void (`PATCH /users/me` sends a new one)."),
    Route("POST", "/auth/password-reset", m.PasswordReset, Who.anyone,
          "Mail a password-reset token to the accounts with this verified address; the same "
          "202 whether or not there is one", TAG, body=m.PasswordResetBody, status=202,
          extra={"login": "email"}),
    Route("POST", "/auth/password-reset/confirm", m.PasswordResetConfirm, Who.anyone,
          "Set a new password with a reset token; every other reset token and every access "
          "token of the account stop working", TAG, body=m.PasswordResetConfirmBody,
          status=204,
          rules="An invalid, used or expired token is 422 `validation_error` naming `token`."),
]
