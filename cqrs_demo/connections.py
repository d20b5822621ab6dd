"""The one place that turns settings into connections to PostgreSQL, RabbitMQ and MongoDB.

Links are built to notice when they die, on both ends:
- RabbitMQ: every connection negotiates a heartbeat (`amqp_heartbeat_seconds`). pika's
  `BlockingConnection` has no thread of its own: it sends and checks heartbeats only inside a pika
  call, so whatever owns a connection calls `keep_alive` while it waits for work (see there).
- PostgreSQL, for the relay, whose lock must move to a standby within seconds of losing the
  database: libpq's TCP keepalives and user timeout on its side, the same on the server's side
  (session settings), and a connect timeout, all derived from `relay_lease_seconds`.
"""

from __future__ import annotations

import math
import time

import pika
import pika.exceptions
import pymongo
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from cqrs_demo.config import Settings


def database_exists(database_url: str) -> bool:
    """Whether the PostgreSQL database named in the URL exists (asked of the server's `postgres`)."""
    return _on_server(database_url, _exists)


def ensure_database(database_url: str) -> None:
    """Create the PostgreSQL database named in the URL if it does not exist yet."""

    def create(conn, name: str) -> None:
        if _exists(conn, name):
            return
        try:
            conn.execute(sa.text(f"CREATE DATABASE {conn.dialect.identifier_preparer.quote(name)}"))
        except sa.exc.ProgrammingError:
            pass  # another process created it between our check and our CREATE

    _on_server(database_url, create)


def _exists(conn, name: str) -> bool:
    return bool(conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}))


def _on_server(database_url: str, work):
    url = make_url(database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            return work(conn, url.database)
    finally:
        admin.dispose()


def relay_link_arguments(settings: Settings) -> dict:
    """libpq connection parameters that make a dead link fail within the relay's lease.

    Client side, a silent peer is given up on after ~`relay_lease_seconds` (keepalive probes while
    idle; `tcp_user_timeout` while a statement is unanswered), so a LISTEN wait or a query cannot
    hang for ever. Server side, the same settings for the session let PostgreSQL drop a relay that
    vanished (its advisory lock with it) instead of waiting for the kernel's two-hour default.
    """
    lease = settings.relay_lease_seconds
    probe = max(1, math.floor(lease / 4))  # silent for `probe` s, then 3 probes `probe` s apart: ~lease
    user_timeout_ms = int(lease * 1000)
    client = {"keepalives": 1, "keepalives_idle": probe, "keepalives_interval": probe, "keepalives_count": 3,
              "tcp_user_timeout": user_timeout_ms, "connect_timeout": max(2, math.ceil(lease))}
    server = {"tcp_keepalives_idle": probe, "tcp_keepalives_interval": probe, "tcp_keepalives_count": 3,
              "tcp_user_timeout": user_timeout_ms}
    return {**client, "options": " ".join(f"-c {name}={value}" for name, value in server.items())}


# A pooled connection back in use within this many seconds was alive a moment ago: pinging it
# again costs a round trip per request at load and finds nothing. After an idle spell (a
# restarted database, a dropped link) it is pinged as `pool_pre_ping` would.
PING_AFTER_IDLE_SECONDS = 1.0


def ping_when_idle(engine: Engine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> Engine:
    """Check a pooled connection on checkout only if it sat idle in the pool for `idle_seconds`.

    A dead one raises `DisconnectionError`, on which the pool discards it and checks out another,
    as with `pool_pre_ping`.
    """
    @event.listens_for(engine, "checkin")
    def _stamp(dbapi_connection, record) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, proxy) -> None:
        idle = time.monotonic() - record.info.get("checked_in_at", float("-inf"))
        if idle < idle_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise sa.exc.DisconnectionError(str(error)) from error
        if not alive:
            raise sa.exc.DisconnectionError("the pooled connection did not answer a ping")

    return engine


def libpq_url(settings: Settings) -> str:
    """The database URL as psycopg itself takes it, without SQLAlchemy's driver name."""
    return make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def write_engine(settings: Settings, **kwargs) -> Engine:
    """An engine whose unqualified tables live in the namespace's own schema."""
    engine = ping_when_idle(sa.create_engine(settings.database_url, **kwargs))
    return engine.execution_options(schema_translate_map={None: settings.schema})


def session_engine(settings: Settings, application_name: str) -> Engine:
    """Connections that each are one long-lived, named session in autocommit: what holds a
    session-level advisory lock, and shows in `pg_stat_activity` under `application_name`."""
    return sa.create_engine(
        settings.database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT",
        connect_args={"application_name": application_name},
    )


def mongo_client(settings: Settings, **kwargs) -> pymongo.MongoClient:
    if not settings.mongo_url:
        raise RuntimeError(
            "no MongoDB URL: set CQRS_MONGO_URL, or start the stack with `cqrs-demo up`, "
            "which starts a local stand-in"
        )
    kwargs.setdefault("serverSelectionTimeoutMS", 5000)
    kwargs.setdefault("tz_aware", True)
    return pymongo.MongoClient(settings.mongo_url, **kwargs)


def read_database(settings: Settings, client: pymongo.MongoClient | None = None):
    client = client or mongo_client(settings)
    return client[settings.mongo_database]


def amqp_parameters(settings: Settings) -> pika.URLParameters:
    params = pika.URLParameters(settings.amqp_url)
    params.heartbeat = settings.amqp_heartbeat_seconds
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    return params


def amqp_connection(settings: Settings) -> pika.BlockingConnection:
    return pika.BlockingConnection(amqp_parameters(settings))


def close_quietly(connection: pika.BlockingConnection | None) -> None:
    """Close a RabbitMQ connection that may be half dead already: a failure to close it is moot."""
    if connection is not None and connection.is_open:
        try:
            connection.close()
        except (pika.exceptions.AMQPError, OSError):
            pass


def keep_alive(connection: pika.BlockingConnection) -> None:
    """Let pika send and check heartbeats now, without waiting for anything.

    Call it at least every few seconds from the thread that owns `connection`, whenever that
    thread waits on something other than pika (a PostgreSQL LISTEN, a queue of work). Without it an
    idle connection sends no heartbeats, RabbitMQ closes it after two missed ones, and the next
    publish meets a dead socket. It must be the owning thread: `BlockingConnection` is not
    thread-safe, so a separate heartbeat thread would corrupt the connection it meant to keep.
    Raises like any pika call when the connection has died, which is how its owner learns it.
    """
    raise_if_closed(connection)
    connection.process_data_events(time_limit=0)


def raise_if_closed(connection: pika.BlockingConnection) -> None:
    """A pika error for a connection found closed. Its loss may have been raised, and handled,
    elsewhere (a dropped notice); pika's event loop on a closed connection fails with a bare
    ValueError, which no reconnect loop would take for a lost connection."""
    if connection.is_closed:
        raise pika.exceptions.ConnectionWrongStateError("the connection to RabbitMQ is closed")
