"""The outbox relay: publishes committed outbox rows to RabbitMQ, and marks them only once confirmed.

Guarantees, and what each one survives:
- A row is marked published only after the broker confirmed it (publisher confirms, persistent
  messages, `mandatory` so an unroutable message is an error, not a silent drop). A batch is sent
  whole and its confirms awaited once (`confirms`). A crash between the confirm and the mark
  republishes the row: at-least-once, and the projector drops the copy.
- Rows are read oldest position first, and every unpublished row is read, so a row that committed
  late (a long transaction that took an earlier position) is published late, never skipped.
  Per-aggregate order holds because the write side records an aggregate's events under its
  row lock, so they commit in version order.
- One relay per namespace is active at a time: it holds a PostgreSQL advisory lock on the
  connection it listens on. A second relay waits as a standby and takes over when the lock is
  released, which PostgreSQL does when the active relay's session ends. The lock is held as a
  lease (see `lease`): a relay cut off from the database loses it within `relay_lease_seconds`,
  the standby takes over, and the cut-off relay stops publishing.
- Idle links stay alive: while it waits for commits the relay services RabbitMQ's heartbeats
  (`connections.keep_alive`), and its PostgreSQL links have TCP keepalives and a user timeout.
- Broker or database away: the relay drops its connections, backs off and starts again; at
  start-up it waits for PostgreSQL rather than exit.
- Retention: with `relay_prunes_outbox`, the active relay also moves published rows older than
  `outbox_retention_hours` to the event log (see `write.retention`), a chunk at a time when it
  has nothing to publish, so the outbox it scans stays small.
- Each message names its event's stream in its headers (`messaging.headers`), and carries its
  publication number and published-through mark, from which the read side computes a true
  watermark (`messaging.publication`). What the relay sees of the outbox backlog is reported to
  the read side's status record (`relay_status`).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

import pika
import pika.exceptions
import psycopg
import pymongo.errors
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine

from cqrs_demo import failpoints
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, keep_alive, mongo_client, relay_link_arguments, write_engine
from cqrs_demo.messaging import headers, partition_layout, partitions, publication, topology
from cqrs_demo.messaging.backoff import Backoff
from cqrs_demo.messaging.confirms import ConfirmedPublisher
from cqrs_demo.messaging.lease import LeaderLease
from cqrs_demo.messaging.relay_status import RelayStatus
from cqrs_demo.startup import POSTGRESQL_DOWN, wait_for
from cqrs_demo.write import retention
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import create_schema, outbox, relay_lock_key

log = logging.getLogger(__name__)

RECOVERABLE = (
    pika.exceptions.AMQPError,
    pymongo.errors.PyMongoError,  # the namespace's partition layout is recorded in its read database
    psycopg.OperationalError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
    ConnectionError,
    OSError,
)


# Built once and run with bound parameters (see `write.outbox` for why).
_MARK_PUBLISHED = (
    outbox.update()
    .where(outbox.c.position == sa.any_(sa.bindparam("positions", type_=ARRAY(sa.BigInteger))))
    .values(published_at=sa.func.clock_timestamp())
)


def application_name(settings: Settings) -> str:
    """How the relay names its PostgreSQL sessions, so that others can see which one is active."""
    return f"cqrs-relay:{settings.namespace}"


class NotLeader(Exception):
    """Another relay holds this namespace's lock; this one stays a standby."""


class OutboxRelay:
    def __init__(
        self,
        settings: Settings,
        engine: Engine | None = None,
        batch_size: int = 500,
        before_mark: Callable[[list[int]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine or write_engine(
            settings, connect_args={"application_name": application_name(settings), **relay_link_arguments(settings)}
        )
        self.batch_size = batch_size
        # Between "broker confirmed" and "row marked": where a crash duplicates, never loses.
        self.before_mark = before_mark or (lambda positions: failpoints.trip(settings, failpoints.RELAY_BEFORE_MARK))
        self.is_leader = False
        self._lease: LeaderLease | None = None
        self._next_prune = 0.0  # monotonic time; a relay that becomes active prunes first thing
        self.horizon = publication.Horizon(settings)
        self.status = RelayStatus(settings)
        self._republish_numbered = True

    def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set, reconnecting with back-off after any connection failure."""
        if not wait_for("PostgreSQL", lambda: create_schema(self.settings, self.engine), POSTGRESQL_DOWN, stop):
            return
        self.status.start(stop)
        try:
            self._run(stop)
        finally:
            self.status.join()

    def _run(self, stop: threading.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                with self._leadership(stop) as conn, self._publisher() as publisher:
                    backoff.reset()
                    self._republish_numbered = True  # what a relay before us numbered and did not mark
                    self._relay(conn, publisher, stop)
            except NotLeader:
                stop.wait(self.settings.relay_poll_seconds)
            except RECOVERABLE as exc:
                delay = backoff.next()
                reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]  # not the SQL that follows
                log.warning("relay lost a connection (%s); retrying in %.1fs", reason, delay)
                stop.wait(delay)
            finally:
                self.is_leader = False

    def _relay(self, conn: Connection, publisher: ConfirmedPublisher, stop: threading.Event) -> None:
        while not stop.is_set():
            sent = self.publish_pending(conn, publisher)
            if sent < self.batch_size:
                self._prune_when_due(conn)
                self._wait_for_commits(conn, publisher, stop)

    def publish_pending(self, conn: Connection, publisher: ConfirmedPublisher) -> int:
        """Publish one batch of unpublished rows, oldest first; return how many were published."""
        state = self.horizon.look(conn)
        self.status.saw(state.oldest_unpublished, state.settled)
        rows = []
        if self._republish_numbered:
            rows = publication.numbered_unpublished(conn, self.settings, self.batch_size)
            self._republish_numbered = bool(rows)
        if not rows:
            rows = publication.number_batch(conn, self.settings, state.settled, self.batch_size)
            if rows:
                rows[-1] = publication.settle_tail(conn, self.settings, self.horizon, rows[-1])
        if not rows:
            return 0
        for row in rows:
            if self._lease is not None:
                self._lease.ensure_held()  # never publish as the leader after the lock may have moved on
            self._publish(publisher, row)
        publisher.wait()
        positions = [row.position for row in rows]
        self.before_mark(positions)
        conn.execute(_MARK_PUBLISHED, {"positions": positions})
        return len(rows)

    def _prune_when_due(self, conn: Connection) -> None:
        """One chunk of old published rows to the event log, if retention is due; then again
        right away while there are more, else once per retention period (an hour at most)."""
        if not self.settings.relay_prunes_outbox or time.monotonic() < self._next_prune:
            return
        age = timedelta(hours=self.settings.outbox_retention_hours)
        moved = retention.move_chunk(conn, retention.cutoff(conn, age))
        if moved:
            log.info("moved %d published rows (positions %d-%d) to the event log", len(moved), min(moved), max(moved))
        if len(moved) < retention.CHUNK:
            self._next_prune = time.monotonic() + min(3600.0, age.total_seconds())

    def _publish(self, publisher: ConfirmedPublisher, row) -> None:
        event = event_from_row(row)
        now = datetime.now(timezone.utc)
        publisher.publish(
            exchange=self.settings.exchange,
            routing_key=event.routing_key,
            body=event.to_json(),
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=event.event_id,
                type=event.type,
                timestamp=int(now.timestamp()),
                headers=headers.for_event(event, sequence=row.sequence, published_through=row.published_through,
                                          published_at=now.isoformat(),
                                          partition=partitions.partition_of(event, self.settings.partitions)),
            ),
            mandatory=True,
        )

    def _wait_for_commits(self, conn: Connection, publisher: ConfirmedPublisher, stop: threading.Event) -> None:
        """Until a commit is notified or the poll interval passes, keeping the broker link alive.

        Never longer than a third of the lease: the next poll is what renews it, and PostgreSQL
        ends a leader session that stays idle for a whole lease. Every notification received by
        then is consumed: the next look sees all those commits, so one cycle answers them all.
        (Taken one per cycle, a batch of n commits would be followed by n - 1 empty cycles.)
        """
        wait = min(self.settings.relay_poll_seconds, self.settings.relay_lease_seconds / 3)
        deadline = time.monotonic() + wait
        driver = conn.connection.driver_connection if self.settings.relay_listen else None
        while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            keep_alive(publisher.connection)
            if driver is None:
                stop.wait(min(0.2, remaining))
                continue
            if list(driver.notifies(timeout=min(0.2, remaining), stop_after=1)):
                list(driver.notifies(timeout=0))
                return

    @contextmanager
    def _leadership(self, stop: threading.Event) -> Iterator[Connection]:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if not conn.scalar(sa.select(sa.func.pg_try_advisory_lock(relay_lock_key(self.settings)))):
                raise NotLeader()
            self._lease = LeaderLease(conn, self.settings.relay_lease_seconds)
            try:
                self._lease.begin()
                if self.settings.relay_listen:
                    conn.exec_driver_sql(f'LISTEN "{self.settings.notify_channel}"')
                self.is_leader = True
                log.info("relay is active for namespace %s", self.settings.namespace)
                yield conn
            finally:
                self._lease.end()
                if self._lease.cut:
                    log.warning("relay lost its lease: PostgreSQL did not answer within %gs",
                                self.settings.relay_lease_seconds)
                self._lease = None
                # The lock, the LISTEN and the lease are per session; a pooled connection must not keep them.
                if not conn.closed and not conn.invalidated:
                    try:
                        conn.exec_driver_sql("UNLISTEN *")
                        conn.exec_driver_sql("RESET idle_session_timeout")
                        conn.execute(sa.select(sa.func.pg_advisory_unlock_all()))
                    except RECOVERABLE:
                        conn.invalidate()

    def _declare_layout(self, channels) -> None:
        """The projector's queues, under the namespace's recorded layout (which needs its read database)."""
        if not self.settings.mongo_url:
            topology.declare_projector_queue(channels(), self.settings)
            return
        with mongo_client(self.settings, serverSelectionTimeoutMS=5000) as client:
            partition_layout.declare(channels, self.settings, client[self.settings.mongo_database])

    @contextmanager
    def _publisher(self) -> Iterator[ConfirmedPublisher]:
        connection = amqp_connection(self.settings)
        try:
            channels = topology.ReopeningChannel(connection)
            self._declare_layout(channels)
            yield ConfirmedPublisher(channels())
        finally:
            if connection.is_open:
                try:
                    connection.close()
                except RECOVERABLE:
                    pass
