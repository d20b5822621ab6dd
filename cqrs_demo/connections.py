"""The one place that turns settings into connections to PostgreSQL, RabbitMQ and MongoDB."""

from __future__ import annotations

import pika
import pymongo
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from cqrs_demo.config import Settings


def ensure_database(database_url: str) -> None:
    """Create the PostgreSQL database named in the URL if it does not exist yet."""
    url = make_url(database_url)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            )
            if not exists:
                quoted = conn.dialect.identifier_preparer.quote(url.database)
                try:
                    conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
                except sa.exc.ProgrammingError:
                    pass  # another process created it between our check and our CREATE
    finally:
        admin.dispose()


def write_engine(settings: Settings, **kwargs) -> Engine:
    """An engine whose unqualified tables live in the namespace's own schema."""
    engine = sa.create_engine(settings.database_url, pool_pre_ping=True, **kwargs)
    return engine.execution_options(schema_translate_map={None: settings.schema})


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
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    return params


def amqp_connection(settings: Settings) -> pika.BlockingConnection:
    return pika.BlockingConnection(amqp_parameters(settings))
