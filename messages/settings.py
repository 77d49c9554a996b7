"""One settings object for every process, read from ``TTMS_*`` environment variables."""

from __future__ import annotations

from functools import cached_property

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development defaults. `make up` refuses them when TTMS_ENV=production.
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"
DEV_ADMIN_PASSWORD = "admin-dev-password"
# The Ed25519 seed (32 bytes, base64url) that signs check-in codes (ticket_svc/etickets.py).
DEV_TICKET_SIGNING_KEY = "MGKe5gjif2sZFvjuIpKxdF64S0f7XyJb66yjV2xQhHk"

# The services: the one list (the launcher, which must run before the venv exists, keeps a
# copy that tests/test_compose.py holds to this one). Each runs as `python -m <name>_svc`.
SERVICES = ("user", "studio", "play", "ticket", "order")
PACKAGES = tuple(f"{name}_svc" for name in SERVICES)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTMS_", extra="ignore")

    namespace: str = Field("ttms", pattern=r"^[a-z][a-z0-9_]{0,30}$")
    env: str = "development"
    log_level: str = "INFO"

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    amqp_heartbeat_seconds: int = Field(2, ge=1, le=60)  # why 2: messages/broker.py
    # Broker nodes that keep a copy of each queue (see Names). 1: one node. 3 on a cluster of
    # three or more: a quorum queue needs a majority of its copies, so three survive one node
    # lost (two would survive none, and five need five nodes).
    amqp_replicas: int = Field(1, ge=1, le=7)
    db_host: str = "127.0.0.1"
    db_port: int = 3306
    db_user: str = "root"
    db_password: SecretStr = SecretStr("")
    db_pool_size: int = 10

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_processes: int = 1
    cors_origins: str = "*"
    max_body_bytes: int = 64 * 1024
    rate_limit_per_second: float = 2000.0
    rate_limit_burst: int = 4000
    login_attempts_per_minute: int = 10            # per username
    login_attempts_per_address_per_minute: int = 300
    rpc_timeout_seconds: float = 5.0
    seat_stream_keepalive_seconds: float = Field(15.0, gt=0)  # a quiet seat-map stream's comment
    edge_refusals: bool = True  # holds of seats the gateway's seat map says are taken: 409 there

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_ttl_seconds: int = 3600
    ticket_signing_key: SecretStr = SecretStr(DEV_TICKET_SIGNING_KEY)
    checkin_opens_minutes: int = Field(120, ge=0)  # the door opens this long before a show
    # Buyers are mailed a reminder this long before their show (0: never).
    reminder_minutes: int = Field(1440, ge=0)
    admin_username: str = "admin"
    admin_password: SecretStr = SecretStr(DEV_ADMIN_PASSWORD)
    # argon2id cost: OWASP's first choice (19 MiB, 2 passes, 1 lane), ~20 ms of one core on
    # a 2-core server, so a sign-in storm gets ~50 hashes/s per core; tests lower it. Hashes
    # made with other parameters are rehashed at the next sign-in.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    argon2_concurrency: int = 0  # hashes at once per user_svc process; 0: one per core

    # E-mail (user_svc/mailer.py): an SMTP server; `make up` and the tests run a local sink.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    mail_from: str = "TTMS <no-reply@ttms.localhost>"
    mail_language: str = Field("en", pattern=r"^(en|zh)$")  # when the user chose none
    mail_retry_max_seconds: float = 60.0   # backoff between tries of one mail, at most
    mail_poll_seconds: float = 1.0

    currency: str = "CNY"
    hold_seconds: int = 180
    sales_cutoff_minutes: int = 10
    sweep_interval_seconds: float = 5.0

    event_delivery_limit: int = 5
    outbox_poll_seconds: float = 1.0

    def database_name(self, service: str) -> str:
        return f"{self.namespace}_{service}"

    def database_url(self, service: str, *, with_database: bool = True) -> str:
        password = self.db_password.get_secret_value()
        auth = f"{self.db_user}:{password}" if password else self.db_user
        db = f"/{self.database_name(service)}" if with_database else "/"
        return f"mysql+asyncmy://{auth}@{self.db_host}:{self.db_port}{db}?charset=utf8mb4"

    def uses_dev_secrets(self) -> bool:
        return (
            self.jwt_secret.get_secret_value() == DEV_JWT_SECRET
            or self.admin_password.get_secret_value() == DEV_ADMIN_PASSWORD
            or self.ticket_signing_key.get_secret_value() == DEV_TICKET_SIGNING_KEY
        )

    def refuse_unsafe_production(self) -> None:
        """Exit when production would run on the documented development secrets."""
        if self.env == "production" and (self.uses_dev_secrets()
                                         or len(self.jwt_secret.get_secret_value()) < 32):
            raise SystemExit(
                "TTMS_ENV=production: set TTMS_JWT_SECRET (32+ characters), "
                "TTMS_ADMIN_PASSWORD and TTMS_TICKET_SIGNING_KEY; the development defaults "
                "are refused")

    @cached_property
    def names(self) -> Names:
        return Names(self.namespace, self.amqp_replicas)


class Names:
    """Every exchange and queue name, derived from the namespace, and the arguments each kind
    of queue is declared with.

    On one broker node (``replicas`` 1) commands and delayed messages wait in classic queues:
    commands are transient (a lost one is a timeout its caller sees) and a classic queue costs
    no disk write per message. On a cluster a classic queue lives on one node and is gone with
    it, so there every queue is a quorum queue and the event log a stream, each kept on
    ``replicas`` nodes. The kind of a queue cannot change once declared: a namespace moved
    between the two must have its queues deleted first (``messages.broker.delete_namespace``).
    """

    def __init__(self, ns: str, replicas: int = 1) -> None:
        self.ns = ns
        self.replicas = replicas
        self.events_exchange = f"{ns}.events"
        self.dead_letter_exchange = f"{ns}.dlx"
        self.delay_exchange = f"{ns}.delay"
        self.event_log = f"{ns}.events.log"

    def rpc_queue(self, service: str) -> str:
        return f"{self.ns}.rpc.{service}"

    def event_queue(self, consumer: str) -> str:
        return f"{self.ns}.{consumer}.events"

    def dead_letter_queue(self, consumer: str) -> str:
        return f"{self.ns}.{consumer}.events.dead"

    @property
    def clustered(self) -> bool:
        return self.replicas > 1

    def quorum(self, **arguments: object) -> dict[str, object]:
        """A quorum queue's arguments (the event queues always; every queue on a cluster)."""
        size = {"x-quorum-initial-group-size": self.replicas} if self.clustered else {}
        return {"x-queue-type": "quorum", **size, **arguments}

    def transient(self, **arguments: object) -> dict[str, object]:
        """Queues whose messages a node may lose with itself on one node (commands, delays,
        listeners): classic there, quorum on a cluster so they outlive a node."""
        return self.quorum(**arguments) if self.clustered else dict(arguments)

    def stream(self, **arguments: object) -> dict[str, object]:
        size = {"x-initial-cluster-size": self.replicas} if self.clustered else {}
        return {"x-queue-type": "stream", **size, **arguments}


def load() -> Settings:
    return Settings()
