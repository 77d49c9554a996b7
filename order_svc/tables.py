"""order_svc's tables (database ``<namespace>_order``).

Each fact is recorded once, so that events may arrive in any order and more than once:
an order row per reservation, upserted by whichever of its events comes first and completed by
the others; a sale row per sold ticket, keyed by (reservation, ticket), with a refunded flag.
Box-office figures are sums over the sale rows, never running counters. The catalogue tables
(shows, plays, studios) are copies kept from play_svc's and studio_svc's events.

``PROJECTION`` lists the tables the replay tool rebuilds and swaps in; ``stream_offsets`` is
not among them: it is where readers of the event log keep their place.
"""

import sqlalchemy as sa

from messages.db import inbox_table, outbox_table
from messages.tables import keyed, keyed_copy, ref, timestamp

metadata = sa.MetaData()

orders = keyed_copy(
    "orders", metadata,  # id: the reservation id
    ref("user_id"),
    ref("schedule_id"),
    ref("play_id"),
    sa.Column("play_name", sa.String(200), nullable=True),
    ref("studio_id", nullable=True),
    timestamp("starts_at", nullable=True),
    sa.Column("seats", sa.JSON, nullable=True),  # [{row, col, price}]
    sa.Column("total", sa.BigInteger, nullable=True),
    sa.Column("currency", sa.String(3), nullable=False),
    timestamp("created_at"),  # the hold's, else the first fact seen
    sa.Column("held", sa.Boolean, nullable=False, default=False),
    timestamp("expires_at", nullable=True),
    timestamp("paid_at", nullable=True),
    sa.Column("ticket_count", sa.Integer, nullable=True),  # from ticket.sold
    timestamp("released_at", nullable=True),
    sa.Column("release_reason", sa.String(20), nullable=True),
    # Derived from the sale rows after every event of the reservation.
    sa.Column("refunded_count", sa.Integer, nullable=False, default=0),
    sa.Column("refunded_total", sa.BigInteger, nullable=False, default=0),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Index("ix_orders_user", "user_id", "id"),
    sa.Index("ix_orders_status", "status", "id"),
)

sales = sa.Table(
    "sales", metadata,
    ref("reservation_id", key=True),
    ref("ticket_id", key=True),
    ref("schedule_id"),
    ref("play_id"),
    ref("studio_id", nullable=True),
    sa.Column("seat_row", sa.Integer, nullable=False),
    sa.Column("seat_col", sa.Integer, nullable=False),
    sa.Column("price", sa.BigInteger, nullable=False),
    # The ticket type sold; NULL: full price.
    sa.Column("ticket_type", sa.String(40), nullable=True),
    timestamp("sold_at", nullable=True),  # None while only the refund is known
    sa.Column("refunded", sa.Boolean, nullable=False, default=False),
    timestamp("refunded_at", nullable=True),
    timestamp("checked_in_at", nullable=True),  # ticket.checked_in: at the door
    sa.Index("ix_sales_play", "play_id", "schedule_id"),
    sa.Index("ix_sales_schedule", "schedule_id"),
)

shows = keyed_copy(
    "shows", metadata,  # id: the schedule id
    ref("play_id"),
    ref("studio_id", nullable=True),
    timestamp("starts_at", nullable=True),
    timestamp("ends_at", nullable=True),  # after it, unused tickets are no-shows
    sa.Column("seat_count", sa.Integer, nullable=True),  # `seat` places in schedule.created's map
    sa.Column("status", sa.String(20), nullable=True),
    sa.Index("ix_shows_play", "play_id", "starts_at"),
    sa.Index("ix_shows_starts", "starts_at"),
)

plays = keyed_copy(
    "plays", metadata,
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False, default=False),
)

studios = keyed_copy(
    "studios", metadata,
    sa.Column("name", sa.String(200), nullable=False),
)

stream_offsets = sa.Table(
    "stream_offsets", metadata,
    sa.Column("reader", sa.String(50), primary_key=True),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
    timestamp("updated_at"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)

# Rebuilt by `ttms-orders replay` and swapped in together (the inbox with them: it says which
# events the tables contain).
# The audit log (issue 20.6): staff actions on money and access, from the events that carry an
# ``actor``; only ever inserted (the inbox makes each event add its entry once).
audit_log = keyed(
    "audit_log", metadata,
    timestamp("at"),
    sa.Column("action", sa.String(20), nullable=False),
    ref("actor_id", nullable=True),
    sa.Column("actor_role", sa.String(16), nullable=True),
    sa.Column("address", sa.String(64), nullable=True),
    sa.Column("subject", sa.String(60), nullable=False),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Index("ix_audit_at", "at", "id"),
    sa.Index("ix_audit_actor", "actor_id", "at"),
)

PROJECTION = ("orders", "sales", "shows", "plays", "studios", "audit_log", "inbox")
