"""``python -m migrations upgrade|drop|revision``: see the package docstring."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from messages.db import run_on_server
from messages.settings import SERVICES, Settings

HERE = Path(__file__).parent


def alembic_config(service: str, settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE / service))
    config.set_main_option("version_locations", str(HERE / service / "versions"))
    config.attributes["service"] = service
    config.attributes["settings"] = settings
    return config


def create_databases(settings: Settings, services: list[str]) -> None:
    asyncio.run(run_on_server(settings, [
        f"CREATE DATABASE IF NOT EXISTS `{settings.database_name(s)}` "
        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" for s in services]))


def drop_databases(settings: Settings, services: list[str]) -> None:
    asyncio.run(run_on_server(settings, [
        f"DROP DATABASE IF EXISTS `{settings.database_name(s)}`" for s in services]))


def upgrade(settings: Settings, services: list[str]) -> None:
    create_databases(settings, services)
    for service in services:
        command.upgrade(alembic_config(service, settings), "head")
        print(f"migrated {settings.database_name(service)} to head")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrations")
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("upgrade", help="create the databases and upgrade them to head")
    up.add_argument("services", nargs="*", default=list(SERVICES))
    drop = sub.add_parser("drop", help="drop the databases of this namespace")
    drop.add_argument("services", nargs="*", default=list(SERVICES))
    rev = sub.add_parser("revision", help="start a new migration for a service")
    rev.add_argument("service", choices=SERVICES)
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings()
    unknown = set(getattr(args, "services", [])) - set(SERVICES)
    if unknown:
        parser.error(f"unknown services: {', '.join(sorted(unknown))}")
    if args.action == "upgrade":
        upgrade(settings, args.services or list(SERVICES))
    elif args.action == "drop":
        drop_databases(settings, args.services)
    else:
        create_databases(settings, [args.service])
        command.revision(alembic_config(args.service, settings), message=args.message,
                         autogenerate=args.autogenerate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
