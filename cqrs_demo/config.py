"""Settings for every process of the stack, read from the environment in this one place.

Each process gets a `Settings`; nothing else in the package reads `os.environ`. The defaults
work on a developer machine with PostgreSQL and RabbitMQ on their standard local ports. When
`CQRS_MONGO_URL` is unset, `cqrs-demo up` starts a local MongoDB stand-in and hands its URL to
the processes it starts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

NAMESPACE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/cqrs"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class ConfigError(ValueError):
    """A setting in the environment is malformed."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    amqp_url: str = DEFAULT_AMQP_URL
    mongo_url: str | None = None
    namespace: str = "cqrs"
    host: str = "127.0.0.1"
    command_port: int = 8080
    query_port: int = 8081
    read_wait_seconds: float = 2.0
    relay_poll_seconds: float = 1.0
    relay_listen: bool = True
    projector_prefetch: int = 500
    run_dir: Path = Path(".run")
    # How events travel, and which guarantees the projector keeps. The defaults are the safe
    # design; the others exist to show, side by side, what each guarantee buys.
    delivery: str = "outbox"  # or "naive": the seed's publish-after-commit design
    projector_ack: str = "manual"  # or "auto"
    projector_dedup: bool = True
    projection_audit: bool = False  # log every application, for the anomaly counters
    poison_attempts: int = 3

    def __post_init__(self) -> None:
        if not NAMESPACE_PATTERN.match(self.namespace):
            raise ConfigError(
                f"CQRS_NAMESPACE must match {NAMESPACE_PATTERN.pattern}, got {self.namespace!r}"
            )
        if self.delivery not in ("outbox", "naive"):
            raise ConfigError(f"CQRS_DELIVERY must be outbox or naive, got {self.delivery!r}")
        if self.projector_ack not in ("manual", "auto"):
            raise ConfigError(f"CQRS_PROJECTOR_ACK must be manual or auto, got {self.projector_ack!r}")
        if self.projector_prefetch < 1:
            raise ConfigError("CQRS_PROJECTOR_PREFETCH must be at least 1")

    @property
    def naive(self) -> bool:
        return self.delivery == "naive"

    @property
    def auto_ack(self) -> bool:
        """The seed's consumer acknowledged on delivery; naive mode always does, as it did."""
        return self.naive or self.projector_ack == "auto"

    @property
    def services(self) -> tuple[str, ...]:
        """The processes this stack runs: naive mode has no relay, the command service publishes."""
        if self.naive:
            return ("command", "query", "projector")
        return ("command", "query", "relay", "projector")

    # Names of everything the stack creates, all derived from the namespace so that two
    # namespaces on the same servers never see each other's data.
    @property
    def schema(self) -> str:
        return self.namespace

    @property
    def exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def projector_queue(self) -> str:
        if self.naive:  # exclusive and auto-delete, as the seed's was: it exists only while consumed
            return f"{self.namespace}.projector.naive"
        return f"{self.namespace}.projector"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dead-letter"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.namespace}.projector.dead"

    @property
    def mongo_database(self) -> str:
        return f"{self.namespace}_read"

    @property
    def notify_channel(self) -> str:
        return f"{self.namespace}_outbox"

    @property
    def stack_dir(self) -> Path:
        return self.run_dir / self.namespace

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)


def _int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None


def _bool(env, name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def from_environment(env=None) -> Settings:
    env = os.environ if env is None else env
    return Settings(
        database_url=env.get("CQRS_DATABASE_URL") or DEFAULT_DATABASE_URL,
        amqp_url=env.get("CQRS_AMQP_URL") or DEFAULT_AMQP_URL,
        mongo_url=env.get("CQRS_MONGO_URL") or None,
        namespace=env.get("CQRS_NAMESPACE") or "cqrs",
        host=env.get("CQRS_HOST") or "127.0.0.1",
        command_port=_int(env, "CQRS_COMMAND_PORT", 8080),
        query_port=_int(env, "CQRS_QUERY_PORT", 8081),
        read_wait_seconds=_float(env, "CQRS_READ_WAIT_SECONDS", 2.0),
        relay_poll_seconds=_float(env, "CQRS_RELAY_POLL_SECONDS", 1.0),
        relay_listen=_bool(env, "CQRS_RELAY_LISTEN", True),
        projector_prefetch=_int(env, "CQRS_PROJECTOR_PREFETCH", 500),
        run_dir=Path(env.get("CQRS_RUN_DIR") or ".run"),
        delivery=env.get("CQRS_DELIVERY") or "outbox",
        projector_ack=env.get("CQRS_PROJECTOR_ACK") or "manual",
        projector_dedup=_bool(env, "CQRS_PROJECTOR_DEDUP", True),
        projection_audit=_bool(env, "CQRS_PROJECTION_AUDIT", False),
        poison_attempts=_int(env, "CQRS_POISON_ATTEMPTS", 3),
    )


def to_environment(settings: Settings) -> dict[str, str]:
    """The inverse of `from_environment`: how a parent hands its settings to a child process."""
    env = {
        "CQRS_DATABASE_URL": settings.database_url,
        "CQRS_AMQP_URL": settings.amqp_url,
        "CQRS_NAMESPACE": settings.namespace,
        "CQRS_HOST": settings.host,
        "CQRS_COMMAND_PORT": str(settings.command_port),
        "CQRS_QUERY_PORT": str(settings.query_port),
        "CQRS_READ_WAIT_SECONDS": str(settings.read_wait_seconds),
        "CQRS_RELAY_POLL_SECONDS": str(settings.relay_poll_seconds),
        "CQRS_RELAY_LISTEN": "true" if settings.relay_listen else "false",
        "CQRS_PROJECTOR_PREFETCH": str(settings.projector_prefetch),
        "CQRS_RUN_DIR": str(settings.run_dir),
        "CQRS_DELIVERY": settings.delivery,
        "CQRS_PROJECTOR_ACK": settings.projector_ack,
        "CQRS_PROJECTOR_DEDUP": "true" if settings.projector_dedup else "false",
        "CQRS_PROJECTION_AUDIT": "true" if settings.projection_audit else "false",
        "CQRS_POISON_ATTEMPTS": str(settings.poison_attempts),
    }
    if settings.mongo_url:
        env["CQRS_MONGO_URL"] = settings.mongo_url
    return env
