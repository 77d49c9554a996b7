"""play_svc."""
