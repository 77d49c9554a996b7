"""alembic environment of order_svc."""

from migrations.env import run

run()
