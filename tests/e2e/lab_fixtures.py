"""Helpers for the failure-mode tests: a LabStack per test, in its own namespace, always torn down.

Every stack gets a fresh namespace, its own run directory (the test's `tmp_path`), its own
MongoDB stand-in (so that `faults.restart_mongo` can restart it), the test database, the fault
proxy in front of RabbitMQ and the projection audit on. Teardown stops every process and removes
everything the namespace created: the PostgreSQL schema, the RabbitMQ objects, the Mongo database.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa

from cqrs_demo.connections import amqp_connection, mongo_client, write_engine
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.relay import application_name
from cqrs_demo.read import projection
from cqrs_demo.runtime.processes import child_environment
from cqrs_demo.write.schema import drop_schema, outbox, products, relay_lock_key
from support import extra_process


def new_namespace() -> str:
    return "t_" + uuid.uuid4().hex[:10]


class LabStacks:
    """Starts LabStacks for one test and tears every one of them down afterwards."""

    def __init__(self, base_settings, tmp_path: Path) -> None:
        self.base_settings = base_settings
        self.tmp_path = tmp_path
        self.stacks: list[LabStack] = []

    def start(self, **overrides) -> LabStack:
        settings = {
            "projection_audit": True,
            "run_dir": self.tmp_path,
            "database_url": self.base_settings.database_url,
            "mongo_url": None,  # the stack starts its own stand-in, which faults can restart
            **overrides,
        }
        stack = LabStack(namespace=new_namespace(), faults=True, **settings)
        self.stacks.append(stack)
        return stack.start()

    def teardown(self) -> None:
        errors = []
        for stack in reversed(self.stacks):
            errors += teardown_stack(stack)
        self.stacks.clear()
        if errors:
            raise RuntimeError(f"teardown left something behind: {errors}")


def teardown_stack(stack: LabStack) -> list[str]:
    """Stop every process of `stack` and remove its data everywhere; the errors met on the way."""
    errors: list[str] = []
    settings = stack.observer_settings  # the real broker, not the fault proxy
    running = stack._stack
    if running is not None:
        for name in reversed(list(running.processes)):
            try:  # SIGKILL: the data goes next, so there is nothing for a graceful stop to save
                running.stop_service(name, signal.SIGKILL)
            except Exception as exc:  # keep going: the rest must still be cleaned up
                errors.append(f"stop {name}: {exc!r}")
        if stack.settings.mongo_url:
            try:
                with mongo_client(stack.settings, serverSelectionTimeoutMS=3000) as client:
                    client.drop_database(stack.settings.mongo_database)
            except Exception as exc:
                errors.append(f"drop mongo database: {exc!r}")
        standin = running.standin
        if standin is not None and standin.process is not None and standin.process.alive():
            standin.process.signal(signal.SIGKILL)  # its data is dropped; a restarted stand-in can be slow to stop
            standin.process.wait(10)
    try:
        stack.stop()
    except Exception as exc:
        errors.append(f"stop stack: {exc!r}")
    engine = write_engine(settings)
    try:
        drop_schema(settings, engine)
    except Exception as exc:
        errors.append(f"drop schema: {exc!r}")
    finally:
        engine.dispose()
    try:
        connection = amqp_connection(settings)
        try:
            topology.delete_all(connection.channel(), settings)
        finally:
            connection.close()
    except Exception as exc:
        errors.append(f"delete rabbitmq objects: {exc!r}")
    return errors


# -- looking at a stack ---------------------------------------------------------------------------


def status(stack) -> dict:
    return stack.read_db[projection.STATUS].find_one({"_id": "projector"}) or {}


def assert_equal(stack, timeout: float = 30) -> dict:
    result = wait_until_equal(stack.engine, stack.read_db, timeout)
    assert result["equal"], json.dumps(result, indent=2, default=str)[:3000]
    return result


def pg_versions(stack) -> dict[int, int]:
    with stack.engine.connect() as conn:
        return dict(conn.execute(sa.select(products.c.id, products.c.version)).all())


def read_version(stack, product_id: int) -> int:
    doc = stack.read_db[projection.PRODUCTS].find_one({"_id": product_id}, {"version": 1})
    return doc["version"] if doc else 0


def unpublished(stack) -> int:
    with stack.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).where(outbox.c.published_at.is_(None)))


def assert_caught_up(stack, timeout: float = 30) -> None:
    """The stack runs, every event is published, and the read model equals the write model."""
    assert stack.status()["healthy"].all()
    assert_equal(stack, timeout)
    assert unpublished(stack) == 0


def relay_lock_holders(stack) -> set[int]:
    """PostgreSQL backend pids of the sessions holding this namespace's relay lock (that key only:
    a relay starting up also holds the migration lock for a moment, under the same session name)."""
    with stack.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT l.pid, l.classid::bigint AS hi, l.objid::bigint AS lo FROM pg_locks l "
                "JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND a.application_name = :name"
            ),
            {"name": application_name(stack.settings)},
        ).all()
    key = relay_lock_key(stack.settings) % 2**64  # a bigint key shows as its high and low halves
    return {row.pid for row in rows if (row.hi << 32 | row.lo) == key}


def relay_sessions(stack) -> int:
    """PostgreSQL sessions opened by this namespace's relays, active or standby."""
    with stack.engine.connect() as conn:
        return conn.scalar(
            sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
            {"name": application_name(stack.settings)},
        )


def cli(stack, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`cqrs-demo ARGS` against the stack, as an operator runs it from a shell."""
    return subprocess.run(
        [sys.executable, "-m", "cqrs_demo", *args], env=child_environment(stack.settings), capture_output=True, text=True, timeout=timeout
    )


__all__ = [
    "LabStacks", "assert_equal", "extra_process", "cli", "new_namespace", "pg_versions", "read_version",
    "relay_lock_holders", "relay_sessions", "status", "teardown_stack", "unpublished",
]
