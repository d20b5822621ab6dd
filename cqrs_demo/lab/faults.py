"""Faults a notebook or a test can inject into a running `LabStack`, each as it happens for real.

- `broker_outage`: every connection to RabbitMQ cut and refused for a while (needs `faults=True`).
- `arm`: a failpoint, so the relay or projector SIGKILLs itself at a chosen moment.
- `restart_mongo`: the MongoDB stand-in stopped and started again on the same port and file.
- `redeliver`: copies of chosen events published again, as a broker redelivery would.
- `inject_poison` / `replay_dead_letters`: an event the projector cannot apply, and its replay
  once the producer is fixed.
- `wait_for`: waiting for what a fault sets off (`cqrs_demo.polling.wait_until`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import pandas as pd
import pika
import sqlalchemy as sa

from cqrs_demo import failpoints
from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging import headers as message_headers
from cqrs_demo.polling import wait_until
from cqrs_demo.read.projector import REPLAY_HEADER
from cqrs_demo.write.event_log import committed_events
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import outbox

wait_for = wait_until  # the name notebooks 06 and 07 use


@contextmanager
def broker_outage(stack) -> Iterator[None]:
    """RabbitMQ unreachable for the stack inside the `with` block, reachable again after it."""
    if stack.broker_link is None:
        raise RuntimeError("start the stack with LabStack(..., faults=True) to stage a broker outage")
    stack.broker_link.cut()
    try:
        yield
    finally:
        stack.broker_link.restore()


def arm(stack, name: str) -> None:
    failpoints.arm(stack.settings, name)


def restart_mongo(stack) -> None:
    standin = stack.stack.standin
    if standin is None:
        raise RuntimeError("this stack uses an external MongoDB; only the local stand-in can be restarted")
    standin.stop()
    standin.start()


def _events(stack, column: str, values) -> list:
    """(event, headers) of the committed events whose `column` is one of `values`, wherever they
    are kept (outbox or event log): the headers the relay gave their messages."""
    events = committed_events()
    with stack.engine.connect() as conn:
        rows = conn.execute(sa.select(events).where(events.c[column].in_(list(values))).order_by(events.c.position)).all()
    return [(event_from_row(row), message_headers.for_event(event_from_row(row), sequence=row.sequence,
                                                            published_through=row.published_through))
            for row in rows]


def publish(stack, events, headers: dict | None = None) -> int:
    """Publish events straight to the stack's exchange (as the relay would), bypassing the outbox.

    `events` are events, or (event, headers) pairs; `headers` are added to every message's own.
    """
    connection = amqp_connection(stack.observer_settings)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for item in events:
            event, own = item if isinstance(item, tuple) else (item, message_headers.for_event(item))
            channel.basic_publish(
                stack.settings.exchange,
                event.routing_key,
                event.to_json(),
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=event.event_id,
                    headers={**own, **(headers or {})},
                ),
            )
    finally:
        connection.close()
    return len(events)


def redeliver(stack, positions: list[int]) -> int:
    """Deliver the events at these outbox positions a second time."""
    return publish(stack, _events(stack, "position", positions))


@dataclass
class Poison:
    """A corrupted event in the outbox, and the means to fix it (as a producer fix would)."""

    stack: object
    position: int
    original: dict
    price_written: str = ""  # what the buggy producer put in the event

    def fix(self) -> None:
        with self.stack.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.position == self.position).values(payload=self.original))


def inject_poison(stack, client, product_id: int, bad_price: str = "twelve") -> Poison:
    """Update a product through the API, with the relay paused, then corrupt that event's payload.

    This is a producer bug reaching the broker: the event is well-formed JSON but its price is
    not a number, so applying it fails every time it is tried.
    """
    stack.pause("relay")
    try:
        exchange = client.update_product(product_id, description="poisoned update")
        position = exchange.body["position"]
        with stack.engine.begin() as conn:
            original = conn.scalar(sa.select(outbox.c.payload).where(outbox.c.position == position))
            conn.execute(
                outbox.update().where(outbox.c.position == position).values(payload={**original, "price": bad_price})
            )
    finally:
        stack.resume("relay")
    return Poison(stack, position, original, bad_price)


def _dead_letter_channel(stack):
    connection = amqp_connection(stack.observer_settings)
    return connection, connection.channel()


def dead_letters(stack) -> pd.DataFrame:
    """The dead-letter queue's messages, looked at without taking them off the queue."""
    connection, channel = _dead_letter_channel(stack)
    rows, tags = [], []
    try:
        while True:
            method, properties, body = channel.basic_get(stack.settings.dead_letter_queue)
            if method is None:
                break
            tags.append(method.delivery_tag)
            death = (properties.headers or {}).get("x-death", [{}])[0]
            try:
                event = json.loads(body)
            except ValueError:
                event = {}
            if not isinstance(event, dict):
                event = {}
            stream = message_headers.stream_of(properties.headers)  # still there when the body is not
            rows.append(
                {"message_id": properties.message_id, "type": event.get("type"),
                 "aggregate_id": event.get("aggregate_id", stream and stream.aggregate_id),
                 "version": event.get("aggregate_version", stream and stream.aggregate_version),
                 "reason": death.get("reason"), "body": body.decode(errors="replace")[:200]}
            )
        for tag in tags:
            channel.basic_nack(tag, requeue=True)
    finally:
        connection.close()
    return pd.DataFrame(rows, columns=["message_id", "type", "aggregate_id", "version", "reason", "body"])


def replay_dead_letters(stack) -> int:
    """Take every dead-lettered event off its queue and publish it again, as it now stands in the outbox.

    The outbox is the source of truth: replaying re-reads the (fixed) event there by its id,
    so a fix made to the producer's data is what the projector receives.
    """
    connection, channel = _dead_letter_channel(stack)
    replayed = 0
    try:
        while True:
            method, properties, body = channel.basic_get(stack.settings.dead_letter_queue)
            if method is None:
                break
            events = _events(stack, "event_id", [properties.message_id]) if properties.message_id else []
            if events:
                publish(stack, events, headers={REPLAY_HEADER: True})
                replayed += 1
            channel.basic_ack(method.delivery_tag)
    finally:
        connection.close()
    return replayed

