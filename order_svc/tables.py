"""order_svc's tables (database ``<namespace>_order``)."""

from sqlalchemy import MetaData

from messages.db import inbox_table, outbox_table

metadata = MetaData()

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
