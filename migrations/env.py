"""The alembic environment every service's migrations share (async, one database each).

Each ``migrations/<service>/env.py`` calls ``run()``; ``target_metadata`` comes from the
service's ``tables.py`` so that ``--autogenerate`` can compare.
"""

from __future__ import annotations

import asyncio
import importlib

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from messages.settings import Settings


def run() -> None:
    config = context.config
    service = config.attributes["service"]
    settings: Settings = config.attributes.get("settings") or Settings()
    metadata = importlib.import_module(f"{service}_svc.tables").metadata

    def migrate(connection) -> None:
        context.configure(connection=connection, target_metadata=metadata,
                          compare_type=True, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()

    async def go() -> None:
        engine = create_async_engine(settings.database_url(service))
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(go())
