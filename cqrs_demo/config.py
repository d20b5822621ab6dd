"""Settings for every process of the stack, declared once and read from the environment here.

Each setting is one field of `Settings`: its type, default and meaning. The environment variable
is the field's name in capitals with the `CQRS_` prefix (pydantic-settings reads it), a parent
hands its settings to a child process with `to_environment`, and the README's table is printed
by `python -m cqrs_demo.config --markdown`, all from the same fields. Nothing else in the package
reads `os.environ`. The defaults work on a developer machine with PostgreSQL and RabbitMQ on
their standard local ports. When `CQRS_MONGO_URL` is unset, `cqrs-demo up` starts a local MongoDB
stand-in and hands its URL to the processes it starts.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Mapping

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

PREFIX = "CQRS_"
NAMESPACE_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class ConfigError(ValueError):
    """A setting is malformed; the message names its environment variable."""


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment and a uid with no passwd entry
        return f"uid{os.getuid()}"


class Settings(BaseSettings):
    """One process's settings. Immutable: derive a changed copy with `with_(...)`."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_ignore_empty=True, frozen=True, validate_by_name=True, extra="forbid"
    )

    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/cqrs",
        description="PostgreSQL; the database is created if missing")
    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/%2F", description="RabbitMQ")
    mongo_url: str | None = Field(
        None, description="MongoDB", json_schema_extra={"shown_default": "unset: the local stand-in"})
    namespace: str = Field(
        "cqrs", pattern=NAMESPACE_PATTERN,
        description="prefixes the PostgreSQL schema, exchanges, queues and the Mongo database of `cqrs-demo up`'s "
                    "stack (a notebook's stack derives its own from the student and the notebook)")
    student: str = Field(
        default_factory=_login_name, min_length=1,
        # JupyterHub sets JUPYTERHUB_USER in every single-user server it spawns.
        validation_alias=AliasChoices(f"{PREFIX}STUDENT", "JUPYTERHUB_USER"),
        description="who is using the workbench; each notebook's namespace is derived from it",
        json_schema_extra={"shown_default": "`$JUPYTERHUB_USER` (JupyterHub sets it), else the login name"})
    host: str = Field("127.0.0.1", description="where the HTTP services bind")
    command_port: int = Field(8080, ge=1, le=65535, description="the command service's HTTP port")
    query_port: int = Field(8081, ge=1, le=65535, description="the query service's HTTP port")
    read_wait_seconds: float = Field(2.0, ge=0, description="longest `min_version` wait")
    relay_poll_seconds: float = Field(1.0, gt=0, description="the relay's polling fallback")
    relay_listen: bool = Field(True, description="the relay wakes up on LISTEN/NOTIFY")
    projector_prefetch: int = Field(500, ge=1, description="the projector's prefetch window")
    partitions: int = Field(
        1, ge=1, le=16,
        description="projector queues; every event of one product goes to the same one, each consumed by one "
                    "projector at a time (1: the single queue `<ns>.projector`)")
    run_dir: Path = Field(Path(".run"), description="logs, pid files and the stand-in's data")
    # How events travel, and which guarantees the projector keeps. The defaults are the safe
    # design; the others exist to show, side by side, what each guarantee buys.
    delivery: Literal["outbox", "naive"] = Field(
        "outbox", description="how events travel; `naive` is the seed's publish-after-commit design")
    projector_ack: Literal["manual", "auto"] = Field(
        "manual", description="`manual`: the projector acks after the write; `auto`: on delivery")
    projector_dedup: bool = Field(True, description="the projector's version check (a guarantee toggle)")
    projection_audit: bool = Field(False, description="log every application, for the anomaly counters")
    poison_attempts: int = Field(
        3, ge=1, description="tries before an event is dead-lettered, counted across every projector")
    product_event_version: int = Field(
        1, ge=1, le=2,
        description="schema version of the `product.created`/`updated` events written; 2 splits price into amount and currency")
    # Links that survive idleness and failures.
    amqp_heartbeat_seconds: int = Field(
        30, ge=1, le=600,
        description="the RabbitMQ heartbeat timeout every process negotiates (and services while idle)")
    relay_lease_seconds: float = Field(
        5.0, ge=1, le=300,
        description="how long the active relay may go unheard by PostgreSQL before it loses its lock "
                    "(a standby takes over) and stops publishing; also its TCP keepalive and user timeout")
    # Retention: what is kept, and for how long.
    outbox_retention_hours: float = Field(
        168.0, gt=0,
        description="published outbox rows older than this move to the event log "
                    "(`cqrs-demo outbox prune`'s default age)")
    relay_prunes_outbox: bool = Field(
        True, description="the active relay moves old published rows to the event log by itself")
    audit_retention_hours: float = Field(
        168.0, gt=0, description="how long the projection audit keeps an application (a MongoDB TTL index)")
    idempotency_key_hours: float = Field(
        24.0, gt=0, description="how long an `Idempotency-Key` is remembered, with the answer it got")

    def __init__(self, **values) -> None:
        with _named_errors():
            super().__init__(**values)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        # Only what it is given: `from_environment` reads the environment (this process's, or a
        # mapping a test or a deployable check hands it), so `Settings(...)` and `with_` never
        # pick up a stray variable, .env file or secrets directory.
        return (init_settings,)

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
    def projector_queues(self) -> list[str]:
        """The queues the projectors consume: the one queue, or one per partition (`.p0`, `.p1`...)."""
        if self.partitions == 1:
            return [self.projector_queue]
        return [f"{self.projector_queue}.p{k}" for k in range(self.partitions)]

    @property
    def partition_exchange(self) -> str:
        return f"{self.namespace}.partitions"

    @property
    def applied_exchange(self) -> str:
        """Where the projector announces what it applied (`read.notices`)."""
        return f"{self.namespace}.applied"

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
        """A copy with `changes`, validated like the original."""
        unknown = changes.keys() - type(self).model_fields.keys()
        if unknown:
            raise TypeError(f"Settings has no field {', '.join(sorted(unknown))}")
        return Settings(**{**dict(self), **changes})


def variable(name: str) -> str:
    """The environment variable a field is read from (the first, where several are accepted)."""
    alias = Settings.model_fields[name].validation_alias
    return alias.choices[0] if isinstance(alias, AliasChoices) else PREFIX + name.upper()


def variables() -> dict[str, str]:
    """Every environment variable read, each to its field: the aliases too (JUPYTERHUB_USER)."""
    names = {}
    for name, field in Settings.model_fields.items():
        aliases = field.validation_alias.choices if isinstance(field.validation_alias, AliasChoices) else []
        for env_name in aliases or [variable(name)]:
            names[env_name] = name
    return names


@contextmanager
def _named_errors():
    """pydantic's errors, as one `ConfigError` that names each bad variable and its value."""
    try:
        yield
    except ValidationError as exc:
        fields = Settings.model_fields
        problems = []
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "settings"
            name = variable(where) if where in fields else where
            problems.append(f"{name}: {error['msg']}, got {error['input']!r}")
        raise ConfigError("; ".join(problems)) from None


class _GivenEnvironment(EnvSettingsSource):
    """pydantic-settings' own environment reading (prefix, aliases, empty values), over any mapping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._given = env
        super().__init__(Settings)

    def _load_env_vars(self) -> dict[str, str]:
        # As it treats os.environ: names matched case-insensitively, an empty value as unset.
        return {name.lower(): value for name, value in self._given.items() if value != ""}


def from_environment(env: Mapping[str, str] | None = None) -> Settings:
    """The settings in `env` (default: this process's environment); unset or empty means the default."""
    return Settings(**_GivenEnvironment(os.environ if env is None else env)())


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_environment(settings: Settings) -> dict[str, str]:
    """The inverse of `from_environment`: how a parent hands its settings to a child process."""
    return {variable(name): _text(value) for name, value in settings if value is not None}


def markdown_table() -> str:
    """The README's configuration table: variable, default, meaning, one row per setting."""
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra or {}
        if "shown_default" in extra:
            default = extra["shown_default"]
        elif isinstance(field.default, str | Path):
            default = f"`{field.default}`"
        elif isinstance(field.default, float):
            default = f"{field.default:g}"
        else:
            default = _text(field.default)
        rows.append(f"| `{variable(name)}` | {default} | {field.description} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cqrs_demo.config", description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the README's table of every setting")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table())
        return 0
    try:  # without --markdown: the settings in effect here, as a child process would receive them
        settings = from_environment()
    except ConfigError as exc:
        print(f"cqrs_demo.config: {exc}", file=sys.stderr)
        return 2
    for name, value in to_environment(settings).items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
