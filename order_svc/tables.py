"""order_svc's tables (database ``<namespace>_order``).

Each fact is recorded once, so that events may arrive in any order and more than once:
an order row per reservation, upserted by whichever of its events comes first and completed by
the others; a sale row per sold ticket, keyed by (reservation, ticket), with a refunded flag.
Box-office figures are sums over the sale rows, never running counters. The catalogue tables
(shows, plays, studios) are copies kept from play_svc's and studio_svc's events.

``PROJECTION`` lists the tables the replay tool rebuilds and swaps in; ``stream_offsets`` is
not among them: it is where readers of the event log keep their place.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
)

from messages.db import Timestamp, inbox_table, outbox_table

metadata = MetaData()

orders = Table(
    "orders", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # the reservation id
    Column("user_id", BigInteger, nullable=False),
    Column("schedule_id", BigInteger, nullable=False),
    Column("play_id", BigInteger, nullable=False),
    Column("play_name", String(200), nullable=True),
    Column("studio_id", BigInteger, nullable=True),
    Column("starts_at", Timestamp, nullable=True),
    Column("seats", JSON, nullable=True),           # [{row, col, price}]
    Column("total", BigInteger, nullable=True),
    Column("currency", String(3), nullable=False),
    Column("created_at", Timestamp, nullable=False),  # the hold's, else the first fact seen
    Column("held", Boolean, nullable=False, default=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("paid_at", Timestamp, nullable=True),
    Column("ticket_count", Integer, nullable=True),   # from ticket.sold
    Column("released_at", Timestamp, nullable=True),
    Column("release_reason", String(20), nullable=True),
    # Derived from the sale rows after every event of the reservation.
    Column("refunded_count", Integer, nullable=False, default=0),
    Column("refunded_total", BigInteger, nullable=False, default=0),
    Column("status", String(20), nullable=False),
    Index("ix_orders_user", "user_id", "id"),
    Index("ix_orders_status", "status", "id"),
)

sales = Table(
    "sales", metadata,
    Column("reservation_id", BigInteger, primary_key=True, autoincrement=False),
    Column("ticket_id", BigInteger, primary_key=True, autoincrement=False),
    Column("schedule_id", BigInteger, nullable=False),
    Column("play_id", BigInteger, nullable=False),
    Column("studio_id", BigInteger, nullable=True),
    Column("seat_row", Integer, nullable=False),
    Column("seat_col", Integer, nullable=False),
    Column("price", BigInteger, nullable=False),
    Column("ticket_type", String(40), nullable=True),  # the ticket type sold; NULL: full price
    Column("sold_at", Timestamp, nullable=True),      # None while only the refund is known
    Column("refunded", Boolean, nullable=False, default=False),
    Column("refunded_at", Timestamp, nullable=True),
    Column("checked_in_at", Timestamp, nullable=True),  # ticket.checked_in: at the door
    Index("ix_sales_play", "play_id", "schedule_id"),
    Index("ix_sales_schedule", "schedule_id"),
)

shows = Table(
    "shows", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # the schedule id
    Column("play_id", BigInteger, nullable=False),
    Column("studio_id", BigInteger, nullable=True),
    Column("starts_at", Timestamp, nullable=True),
    Column("ends_at", Timestamp, nullable=True),      # after it, unused tickets are no-shows
    Column("seat_count", Integer, nullable=True),    # `seat` places in schedule.created's map
    Column("status", String(20), nullable=True),
    Index("ix_shows_play", "play_id", "starts_at"),
    Index("ix_shows_starts", "starts_at"),
)

plays = Table(
    "plays", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
)

studios = Table(
    "studios", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
)

stream_offsets = Table(
    "stream_offsets", metadata,
    Column("reader", String(50), primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# Rebuilt by `ttms-orders replay` and swapped in together (the inbox with them: it says which
# events the tables contain).
# The audit log (issue 20.6): staff actions on money and access, from the events that carry an
# ``actor``; only ever inserted (the inbox makes each event add its entry once).
audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("action", String(20), nullable=False),
    Column("actor_id", BigInteger, nullable=True),
    Column("actor_role", String(16), nullable=True),
    Column("address", String(64), nullable=True),
    Column("subject", String(60), nullable=False),
    Column("details", JSON, nullable=False),
    Index("ix_audit_at", "at", "id"),
    Index("ix_audit_actor", "actor_id", "at"),
)

PROJECTION = ("orders", "sales", "shows", "plays", "studios", "audit_log", "inbox")
