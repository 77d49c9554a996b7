"""Each service's schema, as alembic migrations: ``migrations/<service>/versions``.

``python -m migrations upgrade [service ...]`` creates each service's database when missing
(``<namespace>_<service>``) and upgrades it to head; ``python -m migrations revision <service>
-m "message"`` starts a new migration file.
"""
