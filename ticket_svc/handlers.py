"""ticket_svc's command and event handlers: one function per command or event."""

from messages.service import Handlers

handlers = Handlers()
