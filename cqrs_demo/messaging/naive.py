"""The seed's delivery design, kept to show what it loses: publish after commit, from the service.

The command service commits, then publishes each event straight to the exchange: no outbox
relay, no publisher confirms, non-persistent messages. If the broker is away at that moment the
event is gone for good while the client has already been told "201 Created": the dual-write
problem. (The outbox table is still written in naive mode, purely as the record of what
happened that the anomaly counters compare against; nothing reads it for delivery.)

What it must not lose is anything *else*: an event lost here should be lost to the outage
being taught, never to a connection that died of idleness. So one thread owns the broker
connection (pika's `BlockingConnection` is not thread-safe, and services heartbeats only inside
its own calls): request threads hand it their events and wait until it has tried to publish
them, and between requests it keeps the idle connection's heartbeats going.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

import pika
import pika.exceptions

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, close_quietly, keep_alive
from cqrs_demo.messaging import headers, partitions, topology
from cqrs_demo.messaging.events import Event

log = logging.getLogger(__name__)

BROKEN = (pika.exceptions.AMQPError, OSError)


class NaivePublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lost = 0
        self.connections_opened = 0
        self._work: queue.Queue[tuple[list[Event], Future] | None] = queue.Queue()
        self._connection: pika.BlockingConnection | None = None
        self._channel = None
        # Often enough that pika sends its heartbeat (every half timeout) on time.
        self._idle_tick = min(1.0, settings.amqp_heartbeat_seconds / 4)
        self._thread = threading.Thread(target=self._serve, name="naive-publisher", daemon=True)
        self._thread.start()

    def publish(self, events: list[Event]) -> None:
        """Publish `events` now, from the publishing thread; returns once each was sent or lost."""
        done: Future = Future()
        self._work.put((events, done))
        done.result()

    def close(self) -> None:
        self._work.put(None)
        self._thread.join(10)

    # -- the publishing thread: the only one that touches the connection ----------------------

    def _serve(self) -> None:
        while True:
            try:
                job = self._work.get(timeout=self._idle_tick)
            except queue.Empty:
                self._keep_alive()
                continue
            if job is None:
                self._drop_connection()
                return
            events, done = job
            try:
                for event in events:
                    self._publish_one(event)
            finally:
                done.set_result(None)

    def _publish_one(self, event: Event) -> None:
        try:
            self._open_channel().basic_publish(
                exchange=self.settings.exchange,
                routing_key=event.routing_key,
                body=event.to_json(),
                properties=pika.BasicProperties(content_type="application/json", message_id=event.event_id,
                                                headers=headers.for_event(
                                                    event, partition=partitions.partition_of(event, self.settings.partitions))),
            )
        except BROKEN as exc:
            # Faithful to the seed: log it and carry on. The commit stands; the event is lost.
            self.lost += 1
            self._drop_connection()
            log.error("event %s lost: publish after commit failed (%s)", event.event_id, exc)

    def _open_channel(self):
        if self._channel is None or self._channel.is_closed:
            self._drop_connection()
            self._connection = amqp_connection(self.settings)
            self.connections_opened += 1
            self._channel = self._connection.channel()
            topology.declare_exchange(self._channel, self.settings)
        return self._channel

    def _keep_alive(self) -> None:
        if self._connection is None:
            return
        try:
            keep_alive(self._connection)
        except BROKEN as exc:
            log.warning("the broker connection died while idle (%s); the next publish opens a new one", exc)
            self._drop_connection()

    def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        close_quietly(connection)
