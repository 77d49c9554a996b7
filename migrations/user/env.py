"""alembic environment of user_svc."""

from migrations.env import run

run()
