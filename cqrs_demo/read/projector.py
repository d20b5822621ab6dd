"""The projector: consumes events from RabbitMQ and applies them to the MongoDB read model.

It consumes from a durable queue with manual acknowledgements and a prefetch window. A message
is acknowledged only after its effect is in MongoDB (or it proved a duplicate), so a crash at
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
from cqrs_demo.read import poison, projection
from cqrs_demo.read.versioned import Outcome

log = logging.getLogger(__name__)

RECOVERABLE = (pika.exceptions.AMQPError, pymongo.errors.PyMongoError, ConnectionError, OSError)
APPLICATIONS = "applications"
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
        self._stop = threading.Event()

    # -- applying one event ------------------------------------------------------------------

    def apply(self, event: Event, headers: dict[str, Any] | None = None) -> Outcome:
        """Apply one event and record it in the status (and, when auditing, the application log)."""
        headers = headers or {}
        trace: dict[str, Any] = {"delivered_at": datetime.now(timezone.utc)}
        if isinstance(headers.get("published_at"), str):
            trace["published_at"] = headers["published_at"]
        outcome = projection.project(self.db, event, trace, dedup=self.settings.projector_dedup)
        lag_ms = (datetime.now(timezone.utc) - datetime.fromisoformat(event.committed_at)).total_seconds() * 1000
        self._record(event, outcome, lag_ms)
        return outcome

    def handle(self, body: bytes, headers: dict[str, Any] | None = None) -> Outcome:
        """Apply one message body; raises MalformedEvent for a message that is not an event."""
        return self.apply(Event.from_json(body), headers)

    def _record(self, event: Event, outcome: Outcome, lag_ms: float | None) -> None:
        name = projection.COUNTERS[outcome]
        self.counts[name] = self.counts.get(name, 0) + 1
        projection.record_status(self.db, event, outcome, lag_ms)
        if self.settings.projection_audit:
            self.db[APPLICATIONS].insert_one(
                {"event_id": event.event_id, "position": event.position, "aggregate_type": event.aggregate_type,
                 "aggregate_id": event.aggregate_id, "version": event.aggregate_version,
                 "outcome": outcome.value, "at": datetime.now(timezone.utc)}
            )

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1
        self.db[projection.STATUS].update_one({"_id": "projector"}, {"$inc": {name: 1}}, upsert=True)

    # -- one delivery ------------------------------------------------------------------------

    def _on_message(self, channel, method, properties, body) -> None:
        auto_ack = self.settings.auto_ack
        headers = properties.headers or {}
        try:
            event = Event.from_json(body)
        except MalformedEvent as exc:
            log.error("dead-lettering message %s: %s", properties.message_id, exc)
            self._count("dead_lettered")
            if not auto_ack:
                channel.basic_reject(method.delivery_tag, requeue=False)
            return
        try:
            outcome = self.apply(event, headers)
        except MalformedEvent as exc:
            self._poisoned(channel, method, event, exc)
            return
        self._attempts.pop(event.event_id, None)
        if outcome is Outcome.GAP and not auto_ack:
            self._gap(channel, method, event)
            return
        if headers.get(REPLAY_HEADER) and outcome is Outcome.APPLIED:
            self._unpark(event)
        failpoints.trip(self.settings, failpoints.PROJECTOR_BEFORE_ACK)
        if not auto_ack:
            channel.basic_ack(method.delivery_tag)

    def _poisoned(self, channel, method, event: Event, exc: Exception) -> None:
        attempts = self._attempts.get(event.event_id, 0) + 1
        self._attempts[event.event_id] = attempts
        if self.settings.auto_ack:
            log.error("event %s failed and is gone (auto-ack): %s", event.event_id, exc)
            return
        if attempts < self.settings.poison_attempts:
            log.warning("event %s failed (attempt %d): %s", event.event_id, attempts, exc)
            self._stop.wait(self.gap_retry_delay)
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        log.error("dead-lettering event %s after %d attempts: %s", event.event_id, attempts, exc)
        self._attempts.pop(event.event_id, None)
        poison.hold(self.db, event, str(exc))
        self._count("dead_lettered")
        channel.basic_reject(method.delivery_tag, requeue=False)

    def _gap(self, channel, method, event: Event) -> None:
        if poison.is_held(self.db, event):
            poison.park(self.db, event)
            self._count("parked")
            channel.basic_ack(method.delivery_tag)
            return
        # Its predecessor is still on its way (another projector holds it): give it a moment.
        self._stop.wait(self.gap_retry_delay)
        channel.basic_nack(method.delivery_tag, requeue=True)

    def _unpark(self, event: Event) -> None:
        """The held event is fixed and applied: apply what was parked behind it, in order."""
        for parked in poison.parked_events(self.db, event):
            self.apply(parked)
        poison.release(self.db, event)

    # -- the consuming loop ------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set, reconnecting with back-off after any connection failure."""
        self._stop = stop
        projection.ensure_indexes(self.db)
        backoff = Backoff()
        while not stop.is_set():
            connection = None
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
