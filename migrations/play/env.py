"""alembic environment of play_svc."""

from migrations.env import run

run()
