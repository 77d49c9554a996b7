"""alembic environment of studio_svc."""

from migrations.env import run

run()
