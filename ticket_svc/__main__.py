"""``python -m ticket_svc``: start the ticket service."""

from messages.service import Service
from ticket_svc.handlers import handlers

if __name__ == "__main__":
    Service("ticket", handlers).run()
