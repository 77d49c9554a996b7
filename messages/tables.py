"""The columns every service's ``tables.py`` declares the same way, each declared once here: a
table's own ``id`` key, the id of a row kept elsewhere, and a point in time. (The outbox and inbox
tables every service database has are ``messages.db.outbox_table`` and ``inbox_table``.)"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, Table

from messages.db import Timestamp


def keyed(name: str, metadata: MetaData, *items: Any) -> Table:
    """A table whose rows have a BigInteger ``id`` key, its first column, numbered by the
    database (AUTO_INCREMENT)."""
    return _with_id(name, metadata, items, autoincrement=True)


def keyed_copy(name: str, metadata: MetaData, *items: Any) -> Table:
    """A table of rows that stand for rows kept elsewhere (another service's, or another
    table's), keyed by their BigInteger ``id``, its first column, copied (no AUTO_INCREMENT)."""
    return _with_id(name, metadata, items, autoincrement=False)


def _with_id(name: str, metadata: MetaData, items: tuple[Any, ...], autoincrement: bool) -> Table:
    return Table(
        name, metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=autoincrement),
        *items,
    )


def ref(name: str, *, nullable: bool = False, key: bool = False) -> Column:
    """The id of a row elsewhere, in this database or another service's (so no foreign key);
    with ``key``, part of this table's primary key."""
    if key:
        return Column(name, BigInteger, primary_key=True, autoincrement=False)
    return Column(name, BigInteger, nullable=nullable)


def timestamp(name: str, *, nullable: bool = False) -> Column:
    """A point in time, stored as naive UTC with microseconds (``messages.db.Timestamp``)."""
    return Column(name, Timestamp, nullable=nullable)
