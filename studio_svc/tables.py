"""studio_svc's tables (database ``<namespace>_studio``)."""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from messages.db import Timestamp, inbox_table, outbox_table

metadata = MetaData()

studios = Table(
    "studios", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("rows", SmallInteger, nullable=False),
    Column("cols", SmallInteger, nullable=False),
    # Kept with every change of size or seat kinds: places of kind `seat`.
    Column("seat_count", Integer, nullable=False),
    Column("description", Text, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    # Raised by every resize and by the delete, each only after play_svc recorded the new
    # value as the least a new show's seat map must carry (``play.studio_change``): a map read
    # before the change can no longer make a show. Also raised, with nothing else changed, to
    # end a change play_svc allowed but that never committed here (``studio.layout``).
    Column("layout_version", Integer, nullable=False, server_default="0"),
)


def _places(name: str, value: Column) -> Table:
    """A table of some of each studio's places, one row per place with its ``value``."""
    return Table(
        name, metadata,
        Column("studio_id", BigInteger, ForeignKey("studios.id", ondelete="CASCADE"),
               primary_key=True),
        Column("seat_row", SmallInteger, primary_key=True),
        Column("seat_col", SmallInteger, primary_key=True),
        value,
    )


# Only the places that are not a plain `seat` (aisles, broken seats): a new studio has none.
seat_kinds = _places("seat_kinds", Column("kind", String(16), nullable=False))
# Only the places that belong to a price zone (issue 20.1): a new studio has none.
seat_zones = _places("seat_zones", Column("zone", String(40), nullable=False))

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
