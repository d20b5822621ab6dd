"""The projector: consumes events from RabbitMQ and applies them to the MongoDB read model.

It consumes from a durable queue with manual acknowledgements and a prefetch window, and applies
whatever has arrived as one batch (see `batch`). A message is acknowledged only after its effect
is in MongoDB (or it proved a duplicate), so a crash at
any point redelivers it, and the version check in `versioned` makes the redelivery harmless.
An event that arrives before its predecessor (possible with two projectors sharing the queue)
is returned to the queue and retried, never skipped. An event that keeps failing is a poison
message: see `poison` for how it is dead-lettered without breaking its product's order.

The guarantee toggles in `Settings` (auto-ack, deduplication off, naive delivery) exist only to
show what each guarantee buys; the defaults keep all of them.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

import pika.exceptions
import pymongo.errors

from cqrs_demo import failpoints
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, mongo_client
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.backoff import Backoff
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.read import audit, poison, projection
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.read.batch import project_batch
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.startup import MONGODB_DOWN, wait_for

log = logging.getLogger(__name__)

RECOVERABLE = (pika.exceptions.AMQPError, pymongo.errors.PyMongoError, ConnectionError, OSError)
REPLAY_HEADER = "x-replayed"


class Projector:
    def __init__(self, settings: Settings, prefetch: int | None = None, gap_retry_delay: float = 0.05) -> None:
        self.settings = settings
        self.prefetch = prefetch or settings.projector_prefetch
        self.gap_retry_delay = gap_retry_delay
        self.client = mongo_client(settings)
        self.db = self.client[settings.mongo_database]
        self.counts: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._pending: list = []
        self._stop = threading.Event()

    # -- applying events ---------------------------------------------------------------------

    def apply(self, event: Event, headers: dict[str, Any] | None = None) -> Outcome:
        """Apply one event and record it in the status (and, when auditing, the application log)."""
        outcome = projection.project(self.db, event, self._trace(headers), dedup=self.settings.projector_dedup)
        self._record([(event, outcome)])
        return outcome

    def handle(self, body: bytes, headers: dict[str, Any] | None = None) -> Outcome:
        """Apply one message body; raises MalformedEvent for a message that is not an event."""
        return self.apply(Event.from_json(body), headers)

    def _trace(self, headers: dict[str, Any] | None) -> dict[str, Any]:
        trace: dict[str, Any] = {"delivered_at": datetime.now(timezone.utc)}
        published_at = (headers or {}).get("published_at")
        if isinstance(published_at, str):
            trace["published_at"] = published_at
        return trace

    def _apply_all(self, items: list[tuple[Event, dict[str, Any]]]) -> list:
        if self.settings.projector_dedup:
            return project_batch(self.db, items)
        results = []
        for event, trace in items:
            try:
                results.append(projection.project(self.db, event, trace, dedup=False))
            except MalformedEvent as exc:
                results.append(exc)
        return results

    def _record(self, results: list[tuple[Event, Outcome]]) -> None:
        if not results:
            return
        for _, outcome in results:
            name = projection.COUNTERS[outcome]
            self.counts[name] = self.counts.get(name, 0) + 1
        newest = max((event for event, _ in results), key=lambda e: e.position)
        lag_ms = (datetime.now(timezone.utc) - datetime.fromisoformat(newest.committed_at)).total_seconds() * 1000
        projection.record_statuses(self.db, results, lag_ms)
        if self.settings.projection_audit:
            now = datetime.now(timezone.utc)
            self.db[APPLICATIONS].insert_many(
                [
                    {"event_id": e.event_id, "position": e.position, "aggregate_type": e.aggregate_type,
                     "aggregate_id": e.aggregate_id, "version": e.aggregate_version, "outcome": o.value, "at": now}
                    for e, o in results
                ]
            )

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.db[projection.STATUS].update_one({"_id": "projector"}, {"$inc": {name: 1}}, upsert=True)

    # -- a batch of deliveries ---------------------------------------------------------------

    def _on_message(self, channel, method, properties, body) -> None:
        self._pending.append((method, properties, body))

    def _flush(self, channel) -> None:
        """Apply every delivery received so far, then acknowledge each as its outcome says."""
        deliveries, self._pending = self._pending, []
        auto_ack = self.settings.auto_ack
        parsed = []
        for method, properties, body in deliveries:
            try:
                parsed.append((method, properties.headers or {}, Event.from_json(body)))
            except MalformedEvent as exc:
                log.error("dead-lettering message %s: %s", properties.message_id, exc)
                self._count("dead_lettered")
                if not auto_ack:
                    channel.basic_reject(method.delivery_tag, requeue=False)
        if not parsed:
            return
        results = self._apply_all([(event, self._trace(headers)) for _, headers, event in parsed])
        self._record([(e, r) for (_, _, e), r in zip(parsed, results) if isinstance(r, Outcome)])
        failpoints.trip(self.settings, failpoints.PROJECTOR_BEFORE_ACK)
        retry = []
        for (method, headers, event), result in zip(parsed, results):
            if isinstance(result, MalformedEvent):
                retry += self._poisoned(channel, method, event, result)
                continue
            self._attempts.pop(event.event_id, None)
            if result is Outcome.GAP and not auto_ack:
                retry += self._gap(channel, method, event)
                continue
            if headers.get(REPLAY_HEADER) and result is Outcome.APPLIED:
                self._unpark(event)
            if not auto_ack:
                channel.basic_ack(method.delivery_tag)
        if retry:
            # Give whatever they wait for (a predecessor on another projector, a transient
            # failure) a moment, once for the whole batch, then hand them back to the queue.
            self._stop.wait(self.gap_retry_delay)
            for method in retry:
                channel.basic_nack(method.delivery_tag, requeue=True)

    def _poisoned(self, channel, method, event: Event, exc: Exception) -> list:
        """Deliveries to retry: this one, until it has failed `poison_attempts` times."""
        attempts = self._attempts.get(event.event_id, 0) + 1
        self._attempts[event.event_id] = attempts
        if self.settings.auto_ack:
            log.error("event %s failed and is gone (auto-ack): %s", event.event_id, exc)
            return []
        if attempts < self.settings.poison_attempts:
            log.warning("event %s failed (attempt %d): %s", event.event_id, attempts, exc)
            return [method]
        log.error("dead-lettering event %s after %d attempts: %s", event.event_id, attempts, exc)
        self._attempts.pop(event.event_id, None)
        poison.hold(self.db, event, str(exc))
        self._count("dead_lettered")
        channel.basic_reject(method.delivery_tag, requeue=False)
        return []

    def _gap(self, channel, method, event: Event) -> list:
        """Deliveries to retry: this one, unless its product is held behind a poison message."""
        if poison.is_held(self.db, event):
            poison.park(self.db, event)
            self._count("parked")
            channel.basic_ack(method.delivery_tag)
            return []
        return [method]

    def _unpark(self, event: Event) -> None:
        """The held event is fixed and applied: apply what was parked behind it, in order."""
        for parked in poison.parked_events(self.db, event):
            self.apply(parked)
        poison.release(self.db, event)

    # -- the consuming loop ------------------------------------------------------------------

    def _prepare_read_model(self) -> None:
        projection.ensure_indexes(self.db)
        audit.ensure_retention(self.db, self.settings.audit_retention_hours)

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, reconnecting with back-off after any connection failure."""
        self._stop = stop
        if not wait_for("MongoDB", self._prepare_read_model, MONGODB_DOWN, stop):
            return
        backoff = Backoff()
        while not stop.is_set():
            connection = None
            self._pending = []  # deliveries of a lost connection are redelivered by the broker
            try:
                connection = amqp_connection(self.settings)
                channel = connection.channel()
                topology.declare_projector_queue(channel, self.settings)
                channel.basic_qos(prefetch_count=self.prefetch)
                channel.basic_consume(
                    self.settings.projector_queue, self._on_message, auto_ack=self.settings.auto_ack
                )
                backoff.reset()
                while not stop.is_set():
                    connection.process_data_events(time_limit=0.2)
                    if self._pending:
                        connection.process_data_events(time_limit=0)  # whatever else has arrived
                        self._flush(channel)
            except RECOVERABLE as exc:
                delay = backoff.next()
                log.warning("projector lost a connection (%s); retrying in %.1fs", exc, delay)
                stop.wait(delay)
            finally:
                if connection is not None and connection.is_open:
                    try:
                        connection.close()  # unacknowledged messages go back to the queue
                    except RECOVERABLE:
                        pass
