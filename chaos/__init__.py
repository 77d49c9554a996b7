"""Faults under load: the on-sale rush through the gateway while processes are killed, the
broker restarts, the database freezes, every service runs twice and events arrive twice and out
of order; after each fault, the sales invariants are checked. ``python -m chaos`` (``make
chaos``) runs every fault in its own namespace; ``tests/test_chaos.py`` runs the CI-safe ones.
"""
