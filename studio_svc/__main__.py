"""``python -m studio_svc``: start the studio service."""

from messages.service import Service
from studio_svc.handlers import handlers

if __name__ == "__main__":
    Service("studio", handlers).run()
