"""ticket_svc."""
