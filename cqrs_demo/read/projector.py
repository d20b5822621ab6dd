"""The projector: consumes events from RabbitMQ and applies them to the MongoDB read model.

It consumes from a durable queue with manual acknowledgements and a prefetch window. A message
is acknowledged only after its effect is in MongoDB (or it proved a duplicate), so a crash at
any point redelivers it, and the version check in `versioned` makes the redelivery harmless.
An event that arrives before its predecessor (possible with two projectors sharing the queue)
is returned to the queue and retried, never skipped. A message that is not an event of our
contract is rejected to the dead-letter queue, where it is kept for inspection.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

import pika.exceptions
import pymongo.errors

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, mongo_client
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.backoff import Backoff
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.read import projection
from cqrs_demo.read.versioned import Outcome

log = logging.getLogger(__name__)

RECOVERABLE = (pika.exceptions.AMQPError, pymongo.errors.PyMongoError, ConnectionError, OSError)


class Projector:
    def __init__(self, settings: Settings, prefetch: int | None = None, gap_retry_delay: float = 0.05) -> None:
        self.settings = settings
        self.prefetch = prefetch or settings.projector_prefetch
        self.gap_retry_delay = gap_retry_delay
        self.client = mongo_client(settings)
        self.db = self.client[settings.mongo_database]
        self.counts = {"applied": 0, "duplicates": 0, "gaps": 0, "dead_lettered": 0}
        self._stop: threading.Event | None = None

    def handle(self, body: bytes, headers: dict[str, Any] | None = None) -> Outcome:
        """Apply one message body; raises MalformedEvent for a message that is not an event."""
        delivered_at = datetime.now(timezone.utc)
        event = Event.from_json(body)
        trace = {"delivered_at": delivered_at}
        published_at = (headers or {}).get("published_at")
        if isinstance(published_at, str):
            trace["published_at"] = published_at
        outcome = projection.project(self.db, event, trace)
        lag_ms = (datetime.now(timezone.utc) - datetime.fromisoformat(event.committed_at)).total_seconds() * 1000
        projection.record_status(self.db, event, outcome, lag_ms)
        self.counts[{"applied": "applied", "duplicate": "duplicates", "gap": "gaps"}[outcome.value]] += 1
        return outcome

    def _on_message(self, channel, method, properties, body) -> None:
        try:
            outcome = self.handle(body, properties.headers)
        except MalformedEvent as exc:
            log.error("dead-lettering message %s: %s", properties.message_id, exc)
            self.counts["dead_lettered"] += 1
            channel.basic_reject(method.delivery_tag, requeue=False)
            return
        if outcome is Outcome.GAP:
            # Its predecessor is still on its way (another projector holds it): give it a moment.
            if self._stop is not None:
                self._stop.wait(self.gap_retry_delay)
            channel.basic_nack(method.delivery_tag, requeue=True)
        else:
            channel.basic_ack(method.delivery_tag)

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
                channel.basic_consume(self.settings.projector_queue, self._on_message, auto_ack=False)
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
