"""Users (API.md § Users) → user_svc."""

from gateway.routes.base import Route, Who
from messages.contracts import user as c
from messages.contracts.base import Page

TAG = "Users"

ROUTES = [
    Route("POST", "/auth/register", c.Register, Who.anyone, "Create a customer account",
          TAG, body=c.RegisterBody, response=c.User, status=201,
          links=(("GET /users/{id}", "$response.body#/id"),
                 ("PATCH /users/{id}", "$response.body#/id"),
                 ("DELETE /users/{id}", "$response.body#/id"))),
    Route("POST", "/auth/login", c.Login, Who.anyone, "Sign in; returns a bearer token",
          TAG, body=c.LoginBody, response=c.Token, extra={"login": True}),
    Route("GET", "/users/me", c.GetUser, Who.signed_in, "The signed-in user", TAG,
          response=c.User, extra={"id_from_caller": True}),
    Route("PATCH", "/users/me", c.UpdateMe, Who.signed_in, "Change your e-mail", TAG,
          body=c.UpdateMeBody, response=c.User),
    Route("POST", "/users/me/password", c.ChangePassword, Who.signed_in,
          "Change your password (every token issued before stops working)", TAG,
          body=c.ChangePasswordBody, status=204),
    Route("GET", "/customers", c.FindCustomer, Who.clerk,
          "Find a customer account by username (exact; the box office sells on it)", TAG,
          query=c.CustomerQuery, response=c.User, extra={"not_found": True}),
    Route("GET", "/users", c.ListUsers, Who.admin,
          "List users, by id; `q` finds part of a username or e-mail address (any case), "
          "`role` one role", TAG, query=c.UserQuery, response=Page[c.User]),
    Route("POST", "/users", c.CreateUser, Who.admin, "Create a user of any role", TAG,
          body=c.CreateUserBody, response=c.User, status=201),
    Route("GET", "/users/{id}", c.GetUser, Who.admin_or_self, "A user", TAG, response=c.User),
    Route("PATCH", "/users/{id}", c.UpdateUser, Who.admin,
          "Change a user's role, e-mail or disabled flag", TAG, body=c.UpdateUserBody,
          response=c.User),
    Route("DELETE", "/users/{id}", c.DeleteUser, Who.admin, "Delete a user", TAG, status=204),
]
