"""play_svc's tables (database ``<namespace>_play``)."""

from sqlalchemy import MetaData

from messages.db import inbox_table, outbox_table

metadata = MetaData()

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
