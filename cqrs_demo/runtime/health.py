"""Is each process of a stack doing its job? Checked from outside, the way an operator would.

- command, query: `GET /health` answers 200.
- relay: a session named for the namespace's relay holds the relay's advisory lock.
- projector: the projector queue has at least one consumer.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pika.exceptions
import sqlalchemy as sa

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.relay import application_name
from cqrs_demo.write.schema import relay_lock_key


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200 and json.load(response).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def active_relays(settings: Settings, engine) -> int:
    """Sessions holding this namespace's relay lock: 1 when a relay is active."""
    key = relay_lock_key(settings) & 0xFFFFFFFFFFFFFFFF  # pg_locks shows a bigint key as two oids
    try:
        with engine.connect() as conn:
            return conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND l.classid::bigint = :high AND l.objid::bigint = :low AND a.application_name = :name"
                ),
                {"high": key >> 32, "low": key & 0xFFFFFFFF, "name": application_name(settings)},
            )
    except sa.exc.SQLAlchemyError:
        return 0


def projector_queue_counts(settings: Settings) -> tuple[int, int] | None:
    """(messages ready in the projector queues, consumers on the least-served one); None when
    they cannot be asked or one is missing. With partitions, every partition queue needs a consumer."""
    try:
        connection = amqp_connection(settings)
    except (pika.exceptions.AMQPError, OSError):
        return None
    try:
        counts = topology.partition_depths(topology.ReopeningChannel(connection), settings)
        if any(c is None for c in counts):
            return None
        return sum(c[0] for c in counts), min(c[1] for c in counts)
    except pika.exceptions.AMQPError:
        return None
    finally:
        if connection.is_open:
            connection.close()


def projector_consumers(settings: Settings) -> int:
    counts = projector_queue_counts(settings)
    return counts[1] if counts else 0
