"""ticket_svc's tables (database ``<namespace>_ticket``).

- ``schedules``: ticket_svc's own copy of the facts it needs about each show, kept from
  play_svc's events (or fetched over RPC when a reservation comes first, or finds the show
  being edited).
- ``seats``: the inventory, one row per position of the show's seat map; aisles and broken
  seats are ``unavailable``. ``status`` is the one thing holds fight over: a hold claims seats
  with a conditional UPDATE (``… AND status = 'available'``), so the database is the arbiter.
- ``seat_versions``: each show's seat-map version (one counter per show, see below).
- ``reservations``: holds and what became of them (paid, expired, cancelled).
- ``tickets``: one row per seat sold; refunds keep the row (status ``refunded``). Its
  ``code_version`` is signed into its check-in code (``etickets``); ``checked_in_at`` is set
  once, by the one conditional UPDATE that admits it (``checkins``).
- ``account_tickets``: per show with a ticket cap, the seats each account holds or bought
  (``ticket_svc.limits``).
- ``idempotency_keys``: the first answer per (user, Idempotency-Key) for 24 h, with the
  command and a fingerprint of the request it answered.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
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

schedules = Table(
    "schedules", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("play_id", BigInteger, nullable=False),
    Column("studio_id", BigInteger, nullable=False),
    Column("play_name", String(200), nullable=False),
    Column("starts_at", Timestamp, nullable=False),
    Column("price", Integer, nullable=False),
    Column("status", String(16), nullable=False),          # scheduled | cancelled
    Column("seat_rows", SmallInteger, nullable=False),
    Column("seat_cols", SmallInteger, nullable=False),
    Column("ends_at", Timestamp, nullable=True),           # check-in closes; NULL: not known
    # The show's edit count in play_svc that the facts above reflect, and the one holds must
    # wait for: ticket.begin_show_edit raises edit_version when it finds no sales, in the
    # transaction that counted them (the row's lock; holds take its shared lock). While
    # version < edit_version a hold first gets the show from play_svc (see handlers).
    Column("version", Integer, nullable=False, server_default="0"),
    Column("edit_version", Integer, nullable=False, server_default="0"),
    # 1: no hold may leave a single free seat alone (``domain.single_gaps``); a manager's
    # choice per show (``PATCH /schedules/{id}/seat-rules``), ticket_svc's own fact.
    Column("no_single_gaps", SmallInteger, nullable=False, server_default="0"),
    # The most seats one account may hold or buy for the show; NULL: no cap.
    Column("max_tickets_per_customer", Integer, nullable=True),
    # {zone: price} (JSON); a seat of another zone, or of none, costs `price`.
    Column("prices", Text, nullable=True),
    # The play's ticket types, [{name, percent | amount}] (JSON); NULL: none.
    Column("ticket_types", Text, nullable=True),
    Index("ix_schedules_play", "play_id"),
)

# Only for shows with a cap: the account's held and sold (not refunded) seats of the show,
# raised by a hold in its own transaction (the row's lock makes an account's holds count one
# at a time) and lowered when a hold ends unpaid or a ticket is refunded.
account_tickets = Table(
    "account_tickets", metadata,
    Column("schedule_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tickets", Integer, nullable=False, server_default="0"),
)

seats = Table(
    "seats", metadata,
    Column("schedule_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seat_row", SmallInteger, primary_key=True, autoincrement=False),
    Column("seat_col", SmallInteger, primary_key=True, autoincrement=False),
    Column("status", String(16), nullable=False),          # available|held|sold|unavailable
    Column("zone", String(40), nullable=True),              # its price zone, if any
    # The hold or sale that has the seat. Deliberately not indexed: a reservation's seats are
    # always updated by primary key (the reservation lists them), so that no index-range lock
    # makes neighbouring holds and payments deadlock.
    Column("reservation_id", BigInteger, nullable=True),
)

# The show's seat-map version: raised (``ticket_svc.versions``) in the transaction of every
# change of its seats, last, so that it orders the ``ticket.*`` events and the snapshots the
# gateway builds its seat maps from. Its own table: holds share the show's row in ``schedules``.
seat_versions = Table(
    "seat_versions", metadata,
    Column("schedule_id", BigInteger, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False, server_default="0"),
)

reservations = Table(
    "reservations", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("schedule_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),          # held|paid|expired|cancelled
    Column("seats", JSON, nullable=False),                 # [{row, col, price}], sorted
    Column("total", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("paid_at", Timestamp, nullable=True),
    Column("released_at", Timestamp, nullable=True),
    Column("payment_ref", String(100), nullable=True),
    Index("ix_reservations_due", "status", "expires_at"),
    Index("ix_reservations_user", "user_id", "id"),
    Index("ix_reservations_schedule", "schedule_id", "status"),
)

tickets = Table(
    "tickets", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("reservation_id", BigInteger, nullable=False),
    Column("schedule_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("seat_row", SmallInteger, nullable=False),
    Column("seat_col", SmallInteger, nullable=False),
    Column("price", Integer, nullable=False),
    Column("ticket_type", String(40), nullable=True),       # NULL: full price
    Column("status", String(16), nullable=False),          # sold | refunded
    Column("sold_at", Timestamp, nullable=False),
    Column("refunded_at", Timestamp, nullable=True),
    Column("code_version", Integer, nullable=False, server_default="1"),
    Column("checked_in_at", Timestamp, nullable=True),
    Column("checked_in_by", BigInteger, nullable=True),    # the clerk's user id
    Index("ix_tickets_reservation", "reservation_id"),
    Index("ix_tickets_user", "user_id", "id"),
    Index("ix_tickets_schedule", "schedule_id", "status"),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    # A key is the user's, whatever it was sent with: the same key on another route is
    # another request (refused), not another key.
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("idem_key", String(100, collation="utf8mb4_bin"), primary_key=True),
    Column("command", String(40), nullable=False),
    # sha256 (hex) of the request: the same key with another request is refused (422).
    # NULL for keys recorded before the column existed: those are not compared.
    Column("fingerprint", String(64), nullable=True),
    Column("state", String(8), nullable=False),            # pending | done
    Column("ok", SmallInteger, nullable=True),             # 1 result, 0 error
    Column("answer", Text, nullable=True),                 # JSON of the first answer
    Column("created_at", Timestamp, nullable=False),
    Index("ix_idempotency_created", "created_at"),
)

# The waiting list of sold-out shows (issue 20.4), first come first served by ``id``.
waitlist = Table(
    "waitlist", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("schedule_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("quantity", SmallInteger, nullable=False),
    Column("status", String(8), nullable=False),            # waiting | offered | lapsed
    Column("reservation_id", BigInteger, nullable=True),     # the offer's hold
    Column("joined_at", Timestamp, nullable=False),
    Column("offered_at", Timestamp, nullable=True),
    Index("ix_waitlist_line", "schedule_id", "status", "id"),
    Index("ix_waitlist_user", "user_id", "id"),
    Index("ix_waitlist_reservation", "reservation_id"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
