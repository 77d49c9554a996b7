"""How a route is declared: method, path, who may call it, the models of its input and output,
and the command it becomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pydantic import BaseModel

from messages.contracts.base import Command, Role


class Who(Enum):
    """Who may call a route. Ownership ("owner or clerk+") is checked by the service, which
    knows the owner; the gateway only makes sure such a caller is signed in."""

    anyone = "anyone"                 # no token needed (a token, if sent, must be valid)
    signed_in = "any role"
    clerk = "clerk"
    manager = "manager"
    admin = "admin"
    admin_or_self = "admin or self"   # the path's {id} is the caller's own id

    @property
    def min_role(self) -> Role | None:
        return {Who.clerk: Role.clerk, Who.manager: Role.manager,
                Who.admin: Role.admin}.get(self)


@dataclass(frozen=True)
class Route:
    method: str
    path: str                                   # relative to /api/v1; ids as {id}
    command: type[Command]
    who: Who
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None                        # model (or Page[model]) for the docs
    status: int = 200
    # Fields the gateway fills in from the verified caller: {"field": "user_id"}.
    idempotency_key: bool = False               # pass the Idempotency-Key header along
    timeout: float | None = None
    # Public reads only: answers are shared by every caller for this long (one RPC per path
    # per period however many ask), e.g. the seat map during an on-sale rush.
    cache_seconds: float = 0.0
    # Rules between fields or against stored state that a schema cannot say (each a 422
    # unless it names another status): they go into the operation's description.
    rules: str = ""
    # OpenAPI links from this route's success answer to other operations, beyond those the
    # document derives by itself (a create → the operations on `<its path>/{id}…`):
    # ("GET /orders/{id}", "$response.body#/id") feeds the answer's id to that path's {id};
    # ("POST /reservations", {"schedule_id": "$response.body#/id"}) to fields of its body.
    links: tuple[tuple[str, str | dict[str, str]], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
