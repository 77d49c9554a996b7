"""``python -m order_svc``: start the order service."""

from messages.service import Service
from order_svc.handlers import handlers

if __name__ == "__main__":
    Service("order", handlers).run()
