"""play_svc's tables (database ``<namespace>_play``)."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

from messages.db import Timestamp, inbox_table, outbox_table

metadata = MetaData()

plays = Table(
    "plays", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("area", String(100), nullable=True),
    Column("rating", String(16), nullable=False),
    Column("duration_minutes", SmallInteger, nullable=False),
    Column("description", Text, nullable=True),
    Column("starts_on", Date, nullable=False),
    Column("ends_on", Date, nullable=False),
    Column("price", Integer, nullable=False),
    # [{name, percent | amount}]: the concessions the play offers (issue 20.2); NULL: none.
    Column("ticket_types", JSON, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    # Deleted plays stay as rows: their past shows still name them.
    Column("deleted_at", Timestamp, nullable=True),
)

# studio_svc's studios as play_svc knows them: the current name (from studio.* events, or the
# seat map fetched when a show is first scheduled there). The row is also the studio's lock:
# scheduling a show locks it, so overlap checks of one studio run one at a time, whatever the
# number of play_svc processes; and so does allowing a resize or delete (play.studio_change),
# which records the studio's next layout_version here: a new show's seat map must be at least
# that recent.
studios = Table(
    "studios", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("layout_version", Integer, nullable=False, server_default="0"),
)

schedules = Table(
    "schedules", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("play_id", BigInteger, nullable=False),
    Column("studio_id", BigInteger, nullable=False),
    Column("starts_at", Timestamp, nullable=False),
    Column("ends_at", Timestamp, nullable=False),
    Column("price", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    # The most tickets one account may hold or buy for the show; NULL: no cap.
    Column("max_tickets_per_customer", Integer, nullable=True),
    # {zone: price} of the seat map's price zones; NULL: every seat costs `price`.
    Column("prices", JSON, nullable=True),
    # The studio's seat map when the show was created:
    # {"rows": R, "cols": C, "not_seats": [[row, col, kind], ...]} (every other place a seat).
    Column("seat_map", JSON, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # Edits so far. An edit commits only from the version ticket_svc allowed it from
    # (ticket.begin_show_edit); play.schedule_inventory with at_least raises it to end an
    # allowed edit that never committed.
    Column("version", Integer, nullable=False, server_default="0"),
    Index("ix_schedules_studio_time", "studio_id", "starts_at"),
    Index("ix_schedules_play_time", "play_id", "starts_at"),
    Index("ix_schedules_time", "starts_at"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
