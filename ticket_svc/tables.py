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

import sqlalchemy as sa

from messages.db import inbox_table, outbox_table
from messages.tables import keyed, keyed_copy, ref, timestamp

metadata = sa.MetaData()

schedules = keyed_copy(
    "schedules", metadata,
    ref("play_id"),
    ref("studio_id"),
    sa.Column("play_name", sa.String(200), nullable=False),
    timestamp("starts_at"),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # scheduled | cancelled
    sa.Column("seat_rows", sa.SmallInteger, nullable=False),
    sa.Column("seat_cols", sa.SmallInteger, nullable=False),
    timestamp("ends_at", nullable=True),  # check-in closes; NULL: not known
    # The show's edit count in play_svc that the facts above reflect, and the one holds must
    # wait for: ticket.begin_show_edit raises edit_version when it finds no sales, in the
    # transaction that counted them (the row's lock; holds take its shared lock). While
    # version < edit_version a hold first gets the show from play_svc (see handlers).
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("edit_version", sa.Integer, nullable=False, server_default="0"),
    # 1: no hold may leave a single free seat alone (``domain.single_gaps``); a manager's
    # choice per show (``PATCH /schedules/{id}/seat-rules``), ticket_svc's own fact.
    sa.Column("no_single_gaps", sa.SmallInteger, nullable=False, server_default="0"),
    # The most seats one account may hold or buy for the show; NULL: no cap.
    sa.Column("max_tickets_per_customer", sa.Integer, nullable=True),
    # {zone: price} (JSON); a seat of another zone, or of none, costs `price`.
    sa.Column("prices", sa.Text, nullable=True),
    # The play's ticket types, [{name, percent | amount}] (JSON); NULL: none.
    sa.Column("ticket_types", sa.Text, nullable=True),
    # When the reminder mail of the show's buyers went out (``reminders``); NULL: not yet.
    timestamp("reminded_at", nullable=True),
    sa.Index("ix_schedules_play", "play_id"),
    sa.Index("ix_schedules_reminder", "reminded_at", "starts_at"),
)

# Only for shows with a cap: the account's held and sold (not refunded) seats of the show,
# raised by a hold in its own transaction (the row's lock makes an account's holds count one
# at a time) and lowered when a hold ends unpaid or a ticket is refunded.
account_tickets = sa.Table(
    "account_tickets", metadata,
    ref("schedule_id", key=True),
    ref("user_id", key=True),
    sa.Column("tickets", sa.Integer, nullable=False, server_default="0"),
)

seats = sa.Table(
    "seats", metadata,
    ref("schedule_id", key=True),
    sa.Column("seat_row", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("seat_col", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(16), nullable=False),  # available|held|sold|unavailable
    sa.Column("zone", sa.String(40), nullable=True),  # its price zone, if any
    # The hold or sale that has the seat. Deliberately not indexed: a reservation's seats are
    # always updated by primary key (the reservation lists them), so that no index-range lock
    # makes neighbouring holds and payments deadlock.
    ref("reservation_id", nullable=True),
)

# The show's seat-map version: raised (``ticket_svc.versions``) in the transaction of every
# change of its seats, last, so that it orders the ``ticket.*`` events and the snapshots the
# gateway builds its seat maps from. Its own table: holds share the show's row in ``schedules``.
seat_versions = sa.Table(
    "seat_versions", metadata,
    ref("schedule_id", key=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
)

reservations = keyed(
    "reservations", metadata,
    ref("schedule_id"),
    ref("user_id"),
    sa.Column("status", sa.String(16), nullable=False),  # held|paid|expired|cancelled
    sa.Column("seats", sa.JSON, nullable=False),  # [{row, col, price}], sorted
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    timestamp("expires_at"),
    timestamp("created_at"),
    timestamp("paid_at", nullable=True),
    timestamp("released_at", nullable=True),
    sa.Column("payment_ref", sa.String(100), nullable=True),
    sa.Index("ix_reservations_due", "status", "expires_at"),
    sa.Index("ix_reservations_user", "user_id", "id"),
    sa.Index("ix_reservations_schedule", "schedule_id", "status"),
)

tickets = keyed(
    "tickets", metadata,
    ref("reservation_id"),
    ref("schedule_id"),
    ref("user_id"),
    sa.Column("seat_row", sa.SmallInteger, nullable=False),
    sa.Column("seat_col", sa.SmallInteger, nullable=False),
    sa.Column("price", sa.Integer, nullable=False),
    sa.Column("ticket_type", sa.String(40), nullable=True),  # NULL: full price
    sa.Column("status", sa.String(16), nullable=False),  # sold | refunded
    timestamp("sold_at"),
    timestamp("refunded_at", nullable=True),
    sa.Column("code_version", sa.Integer, nullable=False, server_default="1"),
    timestamp("checked_in_at", nullable=True),
    ref("checked_in_by", nullable=True),  # the clerk's user id
    sa.Index("ix_tickets_reservation", "reservation_id"),
    sa.Index("ix_tickets_user", "user_id", "id"),
    sa.Index("ix_tickets_schedule", "schedule_id", "status"),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    # A key is the user's, whatever it was sent with: the same key on another route is
    # another request (refused), not another key.
    ref("user_id", key=True),
    sa.Column("idem_key", sa.String(100, collation="utf8mb4_bin"), primary_key=True),
    sa.Column("command", sa.String(40), nullable=False),
    # sha256 (hex) of the request: the same key with another request is refused (422).
    # NULL for keys recorded before the column existed: those are not compared.
    sa.Column("fingerprint", sa.String(64), nullable=True),
    sa.Column("state", sa.String(8), nullable=False),  # pending | done
    sa.Column("ok", sa.SmallInteger, nullable=True),  # 1 result, 0 error
    sa.Column("answer", sa.Text, nullable=True),  # JSON of the first answer
    timestamp("created_at"),
    sa.Index("ix_idempotency_created", "created_at"),
)

# The waiting list of sold-out shows (issue 20.4), first come first served by ``id``.
waitlist = keyed(
    "waitlist", metadata,
    ref("schedule_id"),
    ref("user_id"),
    sa.Column("quantity", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),  # waiting|offered|lapsed|passed|left
    ref("reservation_id", nullable=True),  # the offer's hold
    timestamp("joined_at"),
    timestamp("offered_at", nullable=True),
    sa.Index("ix_waitlist_line", "schedule_id", "status", "id"),
    sa.Index("ix_waitlist_user", "user_id", "id"),
    sa.Index("ix_waitlist_reservation", "reservation_id"),
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
