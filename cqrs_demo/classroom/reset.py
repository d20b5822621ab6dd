"""`cqrs-demo class reset`: clear what a class left behind on the servers, and say what went.

For every class namespace (of one student, with `student`) that the registry or the servers
know: its PostgreSQL schema, its RabbitMQ exchanges and queues, its Mongo database (on a real
MongoDB; the stand-in's are files in the run folder), its run folder on this machine, and its
registry row. The exercises' progress record only with `progress=True`.

Only names that are class namespaces (`naming.is_class_namespace`) are ever touched, so the
tests' and benchmarks' namespaces on the same servers are safe. A stack still in use (its
kernel holds the lease, its relay its lock, or its projector queue has a consumer) is skipped
and reported: removing its data would break a student's run, not clear a leftover.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import pika.exceptions
import sqlalchemy as sa

from cqrs_demo.classroom import naming
from cqrs_demo.classroom.census import Survey, survey
from cqrs_demo.classroom.registry import SCHEMA, StackRegistry
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, mongo_client, write_engine
from cqrs_demo.messaging import topology


@dataclass
class ResetReport:
    removed: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (namespace, why)
    dry_run: bool = False

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"{verb} {kind} {name}" for kind, name in self.removed]
        lines += [f"skipped {namespace}: {why}" for namespace, why in self.skipped]
        return lines or ["nothing to remove"]


def _rabbitmq_objects(channel_of, settings: Settings) -> list[tuple[str, str]]:
    """The namespace's queues and exchanges that exist (a passive declare fails for a missing one)."""
    queues, exchanges = topology.owned_names(settings)
    existing = []
    for kind, names, declare in (("queue", queues, "queue_declare"), ("exchange", exchanges, "exchange_declare")):
        for name in names:
            try:
                getattr(channel_of(), declare)(name, passive=True)
                existing.append((kind, name))
            except pika.exceptions.ChannelClosedByBroker:
                pass  # 404: not there
    return existing


class _Channel:
    """A channel that reopens after the broker closed it (as a failed passive declare does)."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.channel = None

    def __call__(self):
        if self.channel is None or self.channel.is_closed:
            self.channel = self.connection.channel()
        return self.channel


def _clear_namespace(namespace: str, seen: Survey, settings: Settings, engine, channel, report: ResetReport) -> None:
    if not naming.is_class_namespace(namespace):  # the one guarantee that matters: nothing else, ever
        raise ValueError(f"refusing to reset {namespace!r}: not a class namespace")
    ns_settings = settings.with_(namespace=namespace)
    row = seen.registered.get(namespace)
    found = []
    if namespace in seen.found.schemas:
        found.append(("schema", namespace, lambda: _drop_schema(engine, namespace)))
    for kind, name in _rabbitmq_objects(channel, ns_settings):
        delete = channel().queue_delete if kind == "queue" else channel().exchange_delete
        found.append((kind, name, lambda delete=delete, name=name: delete(name)))
    if namespace in seen.found.mongo_databases:
        database = ns_settings.mongo_database
        found.append(("mongo database", database, lambda: _drop_mongo_database(settings, database)))
    folder = seen.found.run_folders.get(namespace)
    if folder is None and row and row["host"] == socket.gethostname() and Path(row["stack_dir"]).is_dir():
        folder = Path(row["stack_dir"])
    if folder is not None:
        found.append(("run folder", str(folder), lambda: shutil.rmtree(folder)))
    elif row and row["host"] != socket.gethostname():
        report.skipped.append((namespace, f"its run folder is on {row['host']}: run the reset there too"))
    if row:
        found.append(("registry row", f"{namespace} ({row['student']}, {row['notebook']})",
                      lambda: StackRegistry(engine, seen.schema).remove([namespace])))
    for kind, name, remove in found:
        if not report.dry_run:
            remove()
        report.removed.append((kind, name))


def _drop_schema(engine, schema: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _drop_mongo_database(settings: Settings, database: str) -> None:
    with mongo_client(settings) as client:
        client.drop_database(database)


def _clear_progress(engine, schema: str, student: str | None, report: ResetReport) -> None:
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table("progress", schema=schema):
            return
        where = "" if student is None else " WHERE student = :student"
        count = conn.scalar(sa.text(f'SELECT count(*) FROM "{schema}".progress{where}'), {"student": student})
        if count and not report.dry_run:
            conn.execute(sa.text(f'DELETE FROM "{schema}".progress{where}'), {"student": student})
    if count:
        report.removed.append(("progress rows", f"{count} of {student or 'every student'}"))


def reset(settings: Settings, student: str | None = None, dry_run: bool = False, progress: bool = False,
          schema: str = SCHEMA, run_dirs: list[Path] | None = None) -> ResetReport:
    """Clear the class's (or `student`'s) leftovers; with `dry_run`, only say what would go."""
    report = ResetReport(dry_run=dry_run)
    engine = write_engine(settings)
    connection = amqp_connection(settings)
    try:
        seen = survey(settings, engine, student, schema, run_dirs)
        channel = _Channel(connection)
        for namespace in seen.namespaces:
            if seen.in_use(namespace):
                row = seen.registered.get(namespace)
                who = f" ({row['student']}, {row['notebook']}, pid {row['pid']} on {row['host']})" if row else ""
                report.skipped.append((namespace, f"still running{who}: stop it first"))
                continue
            _clear_namespace(namespace, seen, settings, engine, channel, report)
        if progress:
            _clear_progress(engine, schema, student, report)
    finally:
        if connection.is_open:
            connection.close()
        engine.dispose()
    return report
