"""The write model's tables in PostgreSQL, and the outbox that carries its events.

Tables are declared without a schema; `connections.write_engine` maps them into the
namespace's own schema, so two namespaces share a database without sharing a row.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Engine

from cqrs_demo.config import Settings
from cqrs_demo.connections import ensure_database

metadata = sa.MetaData()

MONEY = sa.Numeric(12, 2)

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("price", MONEY, nullable=False),
    # Wider than any quantity a client may set (2**31 - 1), so restocking a product whose
    # quantity was set to the maximum after it was ordered cannot overflow.
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("sku", sa.String(64), nullable=False, unique=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("quantity >= 0", name="stock_never_negative"),
    sa.CheckConstraint("price >= 0", name="price_not_negative"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("customer", sa.String(100), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("total", MONEY, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("order_id", sa.BigInteger, sa.ForeignKey("orders.id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    # No foreign key to products: a line records the product as it was when ordered, and
    # stays true after the product is deleted.
    sa.Column("product_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("unit_price", MONEY, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("line_total", MONEY, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("position", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("aggregate_type", sa.String(32), nullable=False),
    sa.Column("aggregate_id", sa.BigInteger, nullable=False),
    sa.Column("aggregate_version", sa.Integer, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("aggregate_type", "aggregate_id", "aggregate_version"),
    sa.Index(
        "outbox_unpublished",
        "position",
        postgresql_where=sa.text("published_at IS NULL"),
    ),
)


def _lock_key(settings: Settings, purpose: str) -> int:
    """A stable 32-bit advisory-lock key for one purpose in one namespace."""
    return zlib.crc32(f"{settings.namespace}:{purpose}".encode()) - 2**31


def migration_lock_key(settings: Settings) -> int:
    return _lock_key(settings, "migrate")


def relay_lock_key(settings: Settings) -> int:
    return _lock_key(settings, "relay")


def create_schema(settings: Settings, engine: Engine) -> None:
    """Create the database, the namespace's schema and its tables, if missing.

    Every process calls this at start; the advisory lock keeps concurrent starts from racing
    each other through CREATE TABLE.
    """
    ensure_database(settings.database_url)
    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(migration_lock_key(settings))))
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{settings.schema}"'))
        metadata.create_all(conn)
        _create_notify_trigger(conn, settings)


def _create_notify_trigger(conn, settings: Settings) -> None:
    """NOTIFY the relay from the database itself whenever outbox rows are inserted.

    A NOTIFY is delivered at COMMIT and dropped on ROLLBACK, so the relay wakes exactly when
    there is something committed to publish, and no command can forget to wake it.
    """
    schema = settings.schema
    exists = conn.scalar(
        sa.text(
            "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = 'outbox' AND t.tgname = 'outbox_notify'"
        ),
        {"schema": schema},
    )
    if exists:
        # Creating it again would lock the outbox table behind any open command transaction,
        # and every command after it behind that lock: a process start must not stall writes.
        return
    conn.execute(sa.text(f"""
        CREATE OR REPLACE FUNCTION "{schema}".notify_outbox() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{settings.notify_channel}', '');
            RETURN NULL;
        END $$ LANGUAGE plpgsql
    """))
    conn.execute(sa.text(f"""
        CREATE OR REPLACE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox
        FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_outbox()
    """))


def drop_schema(settings: Settings, engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{settings.schema}" CASCADE'))
