"""The write model's tables in PostgreSQL, the outbox that carries its events, and the event log.

Tables are declared without a schema; `connections.write_engine` maps them into the
namespace's own schema, so two namespaces share a database without sharing a row.

Every event the write side ever committed is in exactly one of two tables: `outbox`, until it
has been published and has aged past the retention, then `event_log` (see `retention`), which
has the same columns and only ever grows. `event_log.event_log` reads both as one log.
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
    sa.Column("schema_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    # Set by the relay just before it publishes the row (see messaging.publication): its place
    # in the order of publication, and the outbox position up to which everything is published.
    sa.Column("sequence", sa.BigInteger, nullable=True, unique=True),
    sa.Column("published_through", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("aggregate_type", "aggregate_id", "aggregate_version"),
    sa.Index(
        "outbox_unpublished",
        "position",
        postgresql_where=sa.text("published_at IS NULL"),
    ),
)


# Published events moved out of the outbox: same columns, same positions, append-only (a trigger
# refuses UPDATE, DELETE and TRUNCATE). Its unique constraints, with the outbox's own and the
# check on outbox inserts (`_create_event_log_triggers`), keep event ids and per-aggregate
# versions unique across both tables.
event_log_table = sa.Table(
    "event_log",
    metadata,
    sa.Column("position", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("aggregate_type", sa.String(32), nullable=False),
    sa.Column("aggregate_id", sa.BigInteger, nullable=False),
    sa.Column("aggregate_version", sa.Integer, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("schema_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=True),
    sa.Column("published_through", sa.BigInteger, nullable=True),
    sa.UniqueConstraint("aggregate_type", "aggregate_id", "aggregate_version"),
)


# The relay's next publication sequence number: one row, advanced in the statement that numbers
# a batch, so numbers are dense (no number is lost to a rolled-back transaction, as a PostgreSQL
# sequence's would be) and survive relay restarts, fail-overs and outbox pruning.
publication = sa.Table(
    "publication",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("next_sequence", sa.BigInteger, nullable=False),
    sa.CheckConstraint("id = 1", name="one_row"),
)

# Columns added to the outbox and the event log after their first release, for namespaces
# created before them.
_ADDED_COLUMNS = {
    "outbox": {"schema_version": "integer NOT NULL DEFAULT 1", "sequence": "bigint UNIQUE",
               "published_through": "bigint"},
    "event_log": {"schema_version": "integer NOT NULL DEFAULT 1", "sequence": "bigint",
                  "published_through": "bigint"},
}


# Each `Idempotency-Key` a command was sent with, and the answer that command got (see `idempotency`).
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),  # which request: method, path, body
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("headers", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)


def _lock_key(settings: Settings, purpose: str) -> int:
    """A stable 32-bit advisory-lock key for one purpose in one namespace."""
    return zlib.crc32(f"{settings.namespace}:{purpose}".encode()) - 2**31


def migration_lock_key(settings: Settings) -> int:
    return _lock_key(settings, "migrate")


def relay_lock_key(settings: Settings) -> int:
    return _lock_key(settings, "relay")


def idempotency_lock_class(settings: Settings) -> int:
    """The first half of a two-part advisory lock on one idempotency key (the second: its hash)."""
    return _lock_key(settings, "idempotency")


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
        _add_missing_columns(conn, settings)
        conn.execute(
            sa.text(f'INSERT INTO "{settings.schema}".publication (id, next_sequence) VALUES (1, 1) '
                    "ON CONFLICT (id) DO NOTHING")
        )
        _create_notify_trigger(conn, settings)
        _create_event_log_triggers(conn, settings)


def _add_missing_columns(conn, settings: Settings) -> None:
    for table, columns in _ADDED_COLUMNS.items():
        present = set(
            conn.scalars(
                sa.text("SELECT column_name FROM information_schema.columns WHERE table_schema = :schema "
                        "AND table_name = :table"),
                {"schema": settings.schema, "table": table},
            )
        )
        # Only when missing: ALTER TABLE locks the table behind every open command transaction.
        for name, definition in columns.items():
            if name not in present:
                conn.execute(sa.text(f'ALTER TABLE "{settings.schema}".{table} ADD COLUMN IF NOT EXISTS "{name}" {definition}'))


def _trigger_exists(conn, settings: Settings, table: str, name: str) -> bool:
    return bool(conn.scalar(
        sa.text(
            "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = :table AND t.tgname = :name"
        ),
        {"schema": settings.schema, "table": table, "name": name},
    ))


def _create_event_log_triggers(conn, settings: Settings) -> None:
    """`event_log` only grows; an outbox row may not reuse an archived event's id or version.

    The write side never tries either (versions are taken under the aggregate's row lock, ids
    are random): these make the database itself refuse, should anything else try.
    """
    schema = settings.schema
    if not _trigger_exists(conn, settings, "event_log", "event_log_append_only"):
        conn.execute(sa.text(f"""
            CREATE OR REPLACE FUNCTION "{schema}".event_log_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'event_log is append-only: % refused', TG_OP;
            END $$ LANGUAGE plpgsql
        """))
        conn.execute(sa.text(f"""
            CREATE OR REPLACE TRIGGER event_log_append_only BEFORE UPDATE OR DELETE ON "{schema}".event_log
            FOR EACH ROW EXECUTE FUNCTION "{schema}".event_log_append_only()
        """))
        conn.execute(sa.text(f"""
            CREATE OR REPLACE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON "{schema}".event_log
            FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".event_log_append_only()
        """))
    if _trigger_exists(conn, settings, "outbox", "outbox_unique_with_event_log"):
        return  # creating it again would lock the outbox behind open commands (see below)
    conn.execute(sa.text(f"""
        CREATE OR REPLACE FUNCTION "{schema}".outbox_unique_with_event_log() RETURNS trigger AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM "{schema}".event_log WHERE event_id = NEW.event_id)
               OR EXISTS (SELECT 1 FROM "{schema}".event_log WHERE aggregate_type = NEW.aggregate_type
                          AND aggregate_id = NEW.aggregate_id AND aggregate_version = NEW.aggregate_version)
            THEN
                RAISE unique_violation USING MESSAGE = format(
                    'event %s (%s %s version %s) is already in the event log',
                    NEW.event_id, NEW.aggregate_type, NEW.aggregate_id, NEW.aggregate_version);
            END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql
    """))
    conn.execute(sa.text(f"""
        CREATE OR REPLACE TRIGGER outbox_unique_with_event_log BEFORE INSERT ON "{schema}".outbox
        FOR EACH ROW EXECUTE FUNCTION "{schema}".outbox_unique_with_event_log()
    """))


def _create_notify_trigger(conn, settings: Settings) -> None:
    """NOTIFY the relay from the database itself whenever outbox rows are inserted.

    A NOTIFY is delivered at COMMIT and dropped on ROLLBACK, so the relay wakes exactly when
    there is something committed to publish, and no command can forget to wake it.
    """
    schema = settings.schema
    if _trigger_exists(conn, settings, "outbox", "outbox_notify"):
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
