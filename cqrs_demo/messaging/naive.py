"""The seed's delivery design, kept to show what it loses: publish after commit, from the service.

The command service commits, then publishes each event straight to the exchange: no outbox
relay, no publisher confirms, non-persistent messages. If the broker is away at that moment the
event is gone for good while the client has already been told "201 Created": the dual-write
problem. (The outbox table is still written in naive mode, purely as the record of what
happened that the anomaly counters compare against; nothing reads it for delivery.)
"""

from __future__ import annotations

import logging
import threading

import pika
import pika.exceptions

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.events import Event

log = logging.getLogger(__name__)


class NaivePublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._local = threading.local()  # pika connections must not be shared between threads
        self.lost = 0

    def _channel(self):
        channel = getattr(self._local, "channel", None)
        if channel is None or channel.is_closed:
            connection = amqp_connection(self.settings)
            channel = connection.channel()
            topology.declare_exchange(channel, self.settings)
            self._local.channel = channel
        return channel

    def publish(self, events: list[Event]) -> None:
        for event in events:
            try:
                self._channel().basic_publish(
                    exchange=self.settings.exchange,
                    routing_key=event.routing_key,
                    body=event.to_json(),
                    properties=pika.BasicProperties(content_type="application/json", message_id=event.event_id),
                )
            except (pika.exceptions.AMQPError, OSError) as exc:
                # Faithful to the seed: log it and carry on. The commit stands; the event is lost.
                self.lost += 1
                self._local.channel = None
                log.error("event %s lost: publish after commit failed (%s)", event.event_id, exc)
