"""studio_svc's tables (database ``<namespace>_studio``)."""

import sqlalchemy as sa

from messages.db import inbox_table, outbox_table
from messages.tables import keyed, timestamp

metadata = sa.MetaData()

studios = keyed(
    "studios", metadata,
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("rows", sa.SmallInteger, nullable=False),
    sa.Column("cols", sa.SmallInteger, nullable=False),
    # Kept with every change of size or seat kinds: places of kind `seat`.
    sa.Column("seat_count", sa.Integer, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    timestamp("created_at"),
    # Raised by every resize and by the delete, each only after play_svc recorded the new
    # value as the least a new show's seat map must carry (``play.studio_change``): a map read
    # before the change can no longer make a show. Also raised, with nothing else changed, to
    # end a change play_svc allowed but that never committed here (``studio.layout``).
    sa.Column("layout_version", sa.Integer, nullable=False, server_default="0"),
)


def _places(name: str, value: sa.Column) -> sa.Table:
    """A table of some of each studio's places, one row per place with its ``value``."""
    return sa.Table(
        name, metadata,
        sa.Column("studio_id", sa.BigInteger, sa.ForeignKey("studios.id", ondelete="CASCADE"),
               primary_key=True),
        sa.Column("seat_row", sa.SmallInteger, primary_key=True),
        sa.Column("seat_col", sa.SmallInteger, primary_key=True),
        value,
    )


# Only the places that are not a plain `seat` (aisles, broken seats): a new studio has none.
seat_kinds = _places("seat_kinds", sa.Column("kind", sa.String(16), nullable=False))
# Only the places that belong to a price zone (issue 20.1): a new studio has none.
seat_zones = _places("seat_zones", sa.Column("zone", sa.String(40), nullable=False))

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
