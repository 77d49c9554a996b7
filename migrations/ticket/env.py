"""alembic environment of ticket_svc."""

from migrations.env import run

run()
