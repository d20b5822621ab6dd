"""A batch published with one wait for its confirms, against the real broker."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest

from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging.confirms import ConfirmedPublisher

PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


@pytest.fixture
def routes(settings):
    """An exchange with one bound queue (key "kept") and nothing bound to any other key."""
    exchange, queue = f"{settings.namespace}.confirms", f"{settings.namespace}.confirms.q"
    connection = amqp_connection(settings)
    channel = connection.channel()
    channel.exchange_declare(exchange, "direct", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange, "kept")
    yield connection, exchange, queue
    channel.queue_delete(queue)
    channel.exchange_delete(exchange)
    connection.close()


def _drain(channel, queue: str) -> list[bytes]:
    bodies = []
    while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
        bodies.append(message[2])
    return bodies


def test_every_message_of_a_batch_is_confirmed_and_kept_in_order(routes):
    connection, exchange, queue = routes
    publisher = ConfirmedPublisher(connection.channel())
    for n in range(200):
        publisher.publish(exchange, "kept", str(n).encode(), PERSISTENT, mandatory=True)
    publisher.wait()
    assert _drain(connection.channel(), queue) == [str(n).encode() for n in range(200)]


def test_waiting_with_nothing_sent_returns_at_once(routes):
    connection, _, _ = routes
    ConfirmedPublisher(connection.channel()).wait()


def test_an_unroutable_message_fails_the_batch_and_is_named(routes):
    connection, exchange, queue = routes
    publisher = ConfirmedPublisher(connection.channel())
    publisher.publish(exchange, "kept", b"first", PERSISTENT, mandatory=True)
    publisher.publish(exchange, "nowhere", b"lost", PERSISTENT, mandatory=True)
    publisher.publish(exchange, "kept", b"last", PERSISTENT, mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError) as failed:
        publisher.wait()
    assert [message.body for message in failed.value.messages] == [b"lost"]
    # The failure is the batch's: the next one starts clean.
    publisher.publish(exchange, "kept", b"again", PERSISTENT, mandatory=True)
    publisher.wait()
    assert _drain(connection.channel(), queue) == [b"first", b"last", b"again"]


def test_a_message_the_broker_refuses_fails_the_batch(settings, routes):
    connection, exchange, _ = routes
    full = f"{settings.namespace}.confirms.full"
    channel = connection.channel()
    channel.queue_declare(full, durable=True, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
    channel.queue_bind(full, exchange, "full")
    try:
        publisher = ConfirmedPublisher(connection.channel())
        for n in range(4):
            publisher.publish(exchange, "full", str(n).encode(), PERSISTENT, mandatory=True)
        with pytest.raises(pika.exceptions.NackError):
            publisher.wait()
    finally:
        channel.queue_delete(full)
