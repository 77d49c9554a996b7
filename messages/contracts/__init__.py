"""Contracts: the pydantic models of every command, reply and event, grouped per service.

A command names itself (``user.register``); the part before the dot is the service whose
queue carries it. Events name their routing key (``ticket.sold``).
"""

from messages.contracts.base import (  # noqa: F401
    COMMANDS,
    EVENTS,
    Caller,
    Command,
    Envelope,
    Event,
    Page,
    Role,
)
