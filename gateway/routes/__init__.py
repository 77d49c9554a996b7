"""Every route of API.md, one module per section."""

from gateway.routes import catalogue, door, mail, operations, orders, sales, users
from gateway.routes.base import Route, Who  # noqa: F401

ROUTES: list[Route] = [*operations.ROUTES, *users.ROUTES, *catalogue.ROUTES, *sales.ROUTES,
                      *orders.ROUTES, *door.ROUTES, *mail.ROUTES]
