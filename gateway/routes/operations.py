"""Operations routes inside /api/v1 (the health endpoints live outside it, in gateway.app)."""

from gateway.routes.base import Route, Who
from messages.contracts import user

ROUTES = [
    Route("GET", "/ping", user.Ping, Who.anyone,
          "A round trip through the gateway, the broker and a service, with no database: "
          "the ceiling of any command (the benchmark measures it)", "Operations",
          response=user.Pong),
]
