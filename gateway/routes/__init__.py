"""Every route of API.md, one module per section."""

from gateway.routes import operations, orders, users
from gateway.routes.base import Route, Who  # noqa: F401

ROUTES: list[Route] = [*operations.ROUTES, *users.ROUTES, *orders.ROUTES]
