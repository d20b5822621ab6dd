"""How the relay wakes: one wake-up for every commit notified while it was busy."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import sqlalchemy as sa

from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging.relay import OutboxRelay

POLL_SECONDS = 0.5


def test_commits_notified_while_the_relay_was_busy_wake_it_once(settings, write_engine):
    settings = settings.with_(relay_poll_seconds=POLL_SECONDS)
    relay = OutboxRelay(settings, engine=write_engine)
    broker = amqp_connection(settings)
    try:
        with write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as listening:
            listening.exec_driver_sql(f'LISTEN "{settings.notify_channel}"')
            with write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as writer:
                for _ in range(5):  # five commits, each notified on its own
                    writer.execute(sa.select(sa.func.pg_notify(settings.notify_channel, "")))
            listening.exec_driver_sql("SELECT 1")  # the notifications have reached this session

            def wait() -> float:
                started = time.monotonic()
                relay._wait_for_commits(listening, SimpleNamespace(connection=broker), threading.Event())
                return time.monotonic() - started

            assert wait() < POLL_SECONDS / 2  # woken by the commits
            assert wait() >= POLL_SECONDS * 0.9  # nothing left over to wake it again
    finally:
        broker.close()
