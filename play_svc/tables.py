"""play_svc's tables (database ``<namespace>_play``)."""

import sqlalchemy as sa

from messages.db import inbox_table, outbox_table
from messages.tables import keyed, keyed_copy, ref, timestamp

metadata = sa.MetaData()

plays = keyed(
    "plays", metadata,
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("area", sa.String(100), nullable=True),
    sa.Column("rating", sa.String(16), nullable=False),
    sa.Column("duration_minutes", sa.SmallInteger, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("starts_on", sa.Date, nullable=False),
    sa.Column("ends_on", sa.Date, nullable=False),
    sa.Column("price", sa.Integer, nullable=False),
    # [{name, percent | amount}]: the concessions the play offers (issue 20.2); NULL: none.
    sa.Column("ticket_types", sa.JSON, nullable=True),
    timestamp("created_at"),
    # Deleted plays stay as rows: their past shows still name them.
    timestamp("deleted_at", nullable=True),
)

# studio_svc's studios as play_svc knows them: the current name (from studio.* events, or the
# seat map fetched when a show is first scheduled there). The row is also the studio's lock:
# scheduling a show locks it, so overlap checks of one studio run one at a time, whatever the
# number of play_svc processes; and so does allowing a resize or delete (play.studio_change),
# which records the studio's next layout_version here: a new show's seat map must be at least
# that recent.
studios = keyed_copy(
    "studios", metadata,
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("layout_version", sa.Integer, nullable=False, server_default="0"),
)

schedules = keyed(
    "schedules", metadata,
    ref("play_id"),
    ref("studio_id"),
    timestamp("starts_at"),
    timestamp("ends_at"),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    # The most tickets one account may hold or buy for the show; NULL: no cap.
    sa.Column("max_tickets_per_customer", sa.Integer, nullable=True),
    # {zone: price} of the seat map's price zones; NULL: every seat costs `price`.
    sa.Column("prices", sa.JSON, nullable=True),
    # The studio's seat map when the show was created:
    # {"rows": R, "cols": C, "not_seats": [[row, col, kind], ...]} (every other place a seat).
    sa.Column("seat_map", sa.JSON, nullable=False),
    timestamp("created_at"),
    # Edits so far. An edit commits only from the version ticket_svc allowed it from
    # (ticket.begin_show_edit); play.schedule_inventory with at_least raises it to end an
    # allowed edit that never committed.
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_schedules_studio_time", "studio_id", "starts_at"),
    sa.Index("ix_schedules_play_time", "play_id", "starts_at"),
    sa.Index("ix_schedules_time", "starts_at"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
