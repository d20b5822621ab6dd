"""What the servers hold for a class, found by asking them, not by trusting any record.

- PostgreSQL: the class schemas (`cls_...`), and which of them are in use now: a kernel holds
  the namespace's lease (`cqrs-lab:<ns>`), a relay holds its lock (`cqrs-relay:<ns>`). Locks
  are visible in `pg_locks` from any machine, unlike the ports the processes listen on.
  (Seeing other users' sessions in `pg_stat_activity` needs a superuser or `pg_read_all_stats`.)
- RabbitMQ: whether a namespace's projector queue has a consumer. AMQP cannot list queues, so
  queues are looked up by the names a namespace gives them.
- MongoDB: the class databases (`<ns>_read`) on a real server (`CQRS_MONGO_URL`). The stand-in
  keeps each stack's database in files in the stack's run folder, found with the folders.
- Run folders: `<run dir>/<ns>` on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pika
import pika.exceptions
import sqlalchemy as sa

from cqrs_demo.classroom import naming
from cqrs_demo.classroom.lease import APPLICATION_PREFIX as LEASE_PREFIX
from cqrs_demo.classroom.lease import lease_key
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, mongo_client
from cqrs_demo.messaging.relay import application_name as relay_application_name
from cqrs_demo.write.schema import relay_lock_key

RELAY_PREFIX = relay_application_name(Settings(namespace="x"))[:-1]  # "cqrs-relay:"


@dataclass
class Findings:
    schemas: set[str] = field(default_factory=set)
    leases: set[str] = field(default_factory=set)  # namespaces a kernel holds now
    relays: set[str] = field(default_factory=set)  # namespaces whose relay is active now
    mongo_databases: set[str] = field(default_factory=set)  # namespaces with a database on CQRS_MONGO_URL
    run_folders: dict[str, Path] = field(default_factory=dict)

    @property
    def namespaces(self) -> set[str]:
        return self.schemas | self.mongo_databases | set(self.run_folders)


def class_schemas(conn) -> set[str]:
    names = conn.scalars(sa.text(r"SELECT nspname FROM pg_namespace WHERE nspname LIKE 'cls\_%'"))
    return {name for name in names if naming.is_class_namespace(name)}


def held_locks(conn, settings: Settings) -> tuple[set[str], set[str]]:
    """(namespaces whose lease is held, namespaces whose relay is active), in this database."""
    rows = conn.execute(sa.text(
        "SELECT a.application_name, l.classid::bigint, l.objid::bigint "
        "FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND (a.application_name LIKE 'cqrs-lab:%' OR a.application_name LIKE 'cqrs-relay:%')"
    )).all()
    leases, relays = set(), set()
    for name, high, low in rows:
        key = high << 32 | low  # pg_locks shows a bigint key as its two unsigned halves
        if name.startswith(LEASE_PREFIX):
            namespace = name[len(LEASE_PREFIX):]
            if key == lease_key(namespace) % 2**64:
                leases.add(namespace)
        elif name.startswith(RELAY_PREFIX):
            namespace = name[len(RELAY_PREFIX):]
            if naming.is_class_namespace(namespace) and key == relay_lock_key(settings.with_(namespace=namespace)) % 2**64:
                relays.add(namespace)
    return leases, relays


def queue_consumers(settings: Settings, queues: list[str]) -> dict[str, int | None]:
    """Consumers on each queue: None for a queue that does not exist, 1 for an exclusive queue
    another connection owns (only its consumer can use it)."""
    found: dict[str, int | None] = {}
    connection = amqp_connection(settings)
    try:
        channel = connection.channel()
        for queue in queues:
            try:
                found[queue] = channel.queue_declare(queue, passive=True).method.consumer_count
            except pika.exceptions.ChannelClosedByBroker as exc:
                found[queue] = 1 if exc.reply_code == 405 else None  # 405: exclusive, in use
                channel = connection.channel()  # a failed passive declare closes the channel
    finally:
        if connection.is_open:
            connection.close()
    return found


def class_mongo_databases(settings: Settings) -> set[str]:
    """Namespaces with a read database on the configured MongoDB (none without CQRS_MONGO_URL)."""
    if not settings.mongo_url:
        return set()
    with mongo_client(settings) as client:
        names = client.list_database_names()
    suffix = settings.with_(namespace="x").mongo_database[1:]  # "_read"
    return {name[: -len(suffix)] for name in names
            if name.endswith(suffix) and naming.is_class_namespace(name[: -len(suffix)])}


def class_run_folders(run_dirs: list[Path]) -> dict[str, Path]:
    folders = {}
    for run_dir in run_dirs:
        if Path(run_dir).is_dir():
            folders.update({p.name: p for p in Path(run_dir).iterdir() if p.is_dir() and naming.is_class_namespace(p.name)})
    return folders


def find(settings: Settings, engine, run_dirs: list[Path]) -> Findings:
    with engine.connect() as conn:
        schemas = class_schemas(conn)
        leases, relays = held_locks(conn, settings)
    return Findings(schemas, leases, relays, class_mongo_databases(settings), class_run_folders(run_dirs))
