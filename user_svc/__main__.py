"""``python -m user_svc``: start the user service."""

from messages.service import Service
from user_svc.handlers import handlers

if __name__ == "__main__":
    Service("user", handlers).run()
