"""The registry of class stacks: which student started which notebook's stack, where, and how it ended.

One row per class namespace in the table `course.stacks` (the course's schema, beside the
exercises' progress record; never part of a stack, so no stack's reset drops it). A `LabStack`
writes its row when it takes its namespace, completes it once it runs, and closes it when it
stops, with a copy of its anomaly counters, since a stopped stack's MongoDB stand-in is gone
with its numbers. It is what `cqrs-demo class status` lists, beside what it finds on the servers.

    namespace      the class namespace (`naming.namespace_for`)
    student        the exact student name, which the namespace only hashes
    notebook       the label the notebook gave its stack ("nb01")
    host, pid      the machine and the process (the notebook's kernel) that started it
    stack_dir      its run folder on that machine: logs, and the stand-in's database files
    mongo_url      where its read model is (the stand-in's port while it runs)
    command_port, query_port
    delivery       "outbox" or "naive"; `guarantees` holds the other toggles it ran with
    started_at, stopped_at (NULL while it runs, or when its kernel died)
    counters       its projector's counters when it stopped (see `counters.py`)
    measurement, measured_at   the last anomaly measurement a notebook made on it
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection, Engine

SCHEMA = "course"

COLUMNS = (
    "namespace", "student", "notebook", "host", "pid", "stack_dir", "mongo_url", "command_port", "query_port",
    "delivery", "guarantees", "started_at", "stopped_at", "counters", "measurement", "measured_at",
)


def stacks_table(schema: str = SCHEMA) -> sa.Table:
    return sa.Table(
        "stacks",
        sa.MetaData(schema=schema),
        sa.Column("namespace", sa.Text, primary_key=True),
        sa.Column("student", sa.Text, nullable=False, index=True),
        sa.Column("notebook", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("stack_dir", sa.Text, nullable=False),
        sa.Column("mongo_url", sa.Text),
        sa.Column("command_port", sa.Integer),
        sa.Column("query_port", sa.Integer),
        sa.Column("delivery", sa.Text, nullable=False),
        sa.Column("guarantees", JSONB, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True)),
        sa.Column("counters", JSONB),
        sa.Column("measurement", JSONB),
        sa.Column("measured_at", sa.DateTime(timezone=True)),
    )


def ensure_course_schema(conn: Connection, schema: str) -> None:
    """Create the course schema if missing, under the lock the progress record takes for the same
    purpose: CREATE SCHEMA IF NOT EXISTS still fails when two sessions run it at the same moment."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"course schema {schema}"))))
    conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))


class StackRegistry:
    """Reads and writes `<schema>.stacks` through `engine`; `schema` is "course" except in tests."""

    def __init__(self, engine: Engine, schema: str = SCHEMA) -> None:
        self.engine = engine
        self.schema = schema
        self.table = stacks_table(schema)
        self._created = False

    def _begin(self):
        return self.engine.begin()

    def ensure(self) -> None:
        if self._created:
            return
        with self._begin() as conn:
            ensure_course_schema(conn, self.schema)
            self.table.create(conn, checkfirst=True)
        self._created = True

    def _exists(self) -> bool:
        with self._begin() as conn:
            return sa.inspect(conn).has_table(self.table.name, schema=self.schema)

    def register(self, **row) -> None:
        """A stack takes its namespace: its row is written afresh, whatever an earlier run left."""
        self.ensure()
        row = {**row, "started_at": datetime.now(timezone.utc), "stopped_at": None, "counters": None,
               "measurement": None, "measured_at": None}
        statement = insert(self.table).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[self.table.c.namespace], set_={k: statement.excluded[k] for k in row if k != "namespace"}
        )
        with self._begin() as conn:
            conn.execute(statement)

    def update(self, namespace: str, **values) -> None:
        self.ensure()
        with self._begin() as conn:
            conn.execute(self.table.update().where(self.table.c.namespace == namespace).values(**values))

    def stopped(self, namespace: str, counters: dict | None) -> None:
        self.update(namespace, stopped_at=datetime.now(timezone.utc), counters=counters)

    def measured(self, namespace: str, measurement: dict) -> None:
        self.update(namespace, measurement=measurement, measured_at=datetime.now(timezone.utc))

    def rows(self, student: str | None = None) -> list[dict]:
        """Every registered stack (or `student`'s), as dicts with the columns above."""
        if not self._exists():
            return []  # no stack has started in this database yet
        query = sa.select(self.table).order_by(self.table.c.student, self.table.c.notebook)
        if student is not None:
            query = query.where(self.table.c.student == student)
        with self._begin() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def find(self, namespace: str) -> dict | None:
        if not self._exists():
            return None
        with self._begin() as conn:
            row = conn.execute(sa.select(self.table).where(self.table.c.namespace == namespace)).first()
        return dict(row._mapping) if row else None

    def remove(self, namespaces: list[str]) -> int:
        if not namespaces or not self._exists():
            return 0
        with self._begin() as conn:
            return conn.execute(self.table.delete().where(self.table.c.namespace.in_(namespaces))).rowcount

