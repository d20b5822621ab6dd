"""The servers a whole class shares, and the part of each that the class uses.

PostgreSQL: every backend of the class's database (a database of its own). MongoDB: the class's
stand-in, all of it. RabbitMQ serves the whole machine, and its VM's memory moves by hundreds
of MB with everyone's traffic, so the class's part is counted from the broker's own figures:
the memory of the class's queues, and its AMQP connections at the broker's mean memory per
connection (`rabbitmqctl`, `rabbitmq-diagnostics`: the broker must be this machine's). Its CPU is
the VM's, to compare with a baseline taken before the class started.
"""

from __future__ import annotations

import json
import subprocess

import pika
import psutil
import sqlalchemy as sa

from cqrs_demo import config
from cqrs_demo.bench.process_cost import alive, by_name, tree
from cqrs_demo.connections import write_engine
from cqrs_demo.runtime.standin import MongoStandIn


def _rabbitmqctl(*args: str) -> list[list[str]]:
    """Rows of a `rabbitmqctl` listing (tab-separated), or [] where it cannot be run."""
    try:
        done = subprocess.run(["rabbitmqctl", "-q", *args, "--no-table-headers"], capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split("\t") for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def _connection_memory_kb() -> float | None:
    """The broker's memory for connections (readers, writers, channels) over its connection count."""
    try:
        done = subprocess.run(["rabbitmq-diagnostics", "-q", "memory_breakdown", "--formatter", "json"],
                              capture_output=True, text=True, timeout=60)
        breakdown = json.loads(done.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    connections = len(_rabbitmqctl("list_connections", "pid"))
    used = sum(item["bytes"] for name, item in breakdown.items() if name.startswith("connection_"))
    return used / 1024 / connections if connections else None


class SharedServers:
    """The processes of the shared servers (`groups`, for `process_cost.measure`) and the class's broker memory."""

    def __init__(self, settings: config.Settings, mongo: MongoStandIn | None) -> None:
        self.engine = write_engine(settings)
        self.mongo = mongo
        self.amqp_port = pika.URLParameters(settings.amqp_url).port

    def postgres_backends(self) -> list[psutil.Process]:
        with self.engine.connect() as conn:
            pids = conn.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).scalars().all()
        return alive(pids)

    def groups(self) -> dict:
        groups = {"postgres": self.postgres_backends, "rabbitmq": lambda: by_name("beam.smp")}
        if self.mongo is not None:
            groups["mongo"] = lambda: tree(self.mongo.process.pid)
        return groups

    def class_broker_memory(self, namespaces: list[str], student_pids: list[int]) -> dict:
        """The memory of the queues of `namespaces`, and of the AMQP connections of the students' processes."""
        prefixes = tuple(f"{namespace}." for namespace in namespaces)
        queues = [(name, int(memory)) for name, memory, *_ in _rabbitmqctl("list_queues", "name", "memory")
                  if prefixes and name.startswith(prefixes)]
        connections = 0
        for pid in student_pids:
            for process in tree(pid):
                try:
                    connections += sum(1 for c in process.net_connections("tcp")
                                       if c.raddr and c.raddr.port == self.amqp_port)
                except psutil.Error:
                    pass
        per_connection_kb = _connection_memory_kb()
        queue_mb = sum(memory for _, memory in queues) / 1024**2
        return {"class_queues": len(queues), "class_queues_mb": round(queue_mb, 2),
                "class_connections": connections,
                "per_connection_kb": None if per_connection_kb is None else round(per_connection_kb, 1),
                "class_memory_mb": round(queue_mb + connections * (per_connection_kb or 0) / 1024, 2)}

    def close(self) -> None:
        self.engine.dispose()
