"""``python -m play_svc``: start the play service."""

from messages.service import Service
from play_svc.handlers import handlers

if __name__ == "__main__":
    Service("play", handlers).run()
