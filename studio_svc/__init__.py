"""studio_svc."""
