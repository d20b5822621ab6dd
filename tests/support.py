"""Helpers several test layers share: background loops and extra processes."""

from __future__ import annotations

import threading
from pathlib import Path

import pika

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging import topology
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.runtime import processes
from cqrs_demo.runtime.processes import Process

# The body of the seed README's "Create a product" request.
SEED_PRODUCT = {
    "name": "Product A",
    "description": "Product Test",
    "price": 120,
    "quantity": 3,
    "sku": "SKU-DEMO-0024",
}


class Background:
    """Runs a relay or projector loop in a thread, stoppable and awaitable like a process."""

    def __init__(self, name: str, loop) -> None:
        self.name = name
        self.stop = threading.Event()
        self.worker = loop
        self.thread = threading.Thread(target=loop.run, args=(self.stop,), name=name, daemon=True)

    def start(self) -> "Background":
        self.thread.start()
        return self

    def halt(self, timeout: float = 10) -> None:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} did not stop"


def remove_namespace(settings: Settings) -> None:
    """Everything a namespace created on the servers: its schema, exchanges and queues, and Mongo database."""
    from cqrs_demo.connections import amqp_connection, mongo_client, write_engine
    from cqrs_demo.messaging import topology
    from cqrs_demo.write.schema import drop_schema

    engine = write_engine(settings)
    try:
        drop_schema(settings, engine)
    finally:
        engine.dispose()
    connection = amqp_connection(settings)
    try:
        topology.delete_all(connection.channel(), settings)
    finally:
        connection.close()
    with mongo_client(settings) as client:
        client.drop_database(settings.mongo_database)


def extra_process(settings: Settings, directory: Path, name: str) -> Process:
    """One more `cqrs-demo serve NAME` beside a stack's own, logging to `extra-NAME.log`; stop it in a finally."""
    return processes.start_service(name, settings, Path(directory) / f"extra-{name}.log")


REPLAYED = "x-replayed"


class Broker:
    """The namespace's exchange and dead-letter queue, seen from a test."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.connection = amqp_connection(settings)
        self.channel = self.connection.channel()
        topology.declare_projector_queue(self.channel, settings)
        self.channel.confirm_delivery()

    def publish(self, body: bytes, headers: dict, message_id: str) -> None:
        self.channel.basic_publish(
            self.settings.exchange,
            "product.updated",
            body,
            pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, message_id=message_id, headers=headers),
            mandatory=True,
        )

    def dead_letters(self, count: int, timeout: float = 30.0) -> list[tuple[pika.BasicProperties, bytes]]:
        """Take `count` dead letters off their queue (fewer if they do not come in time)."""
        taken: list = []

        def all_taken() -> bool:
            while len(taken) < count:
                method, properties, body = self.channel.basic_get(self.settings.dead_letter_queue, auto_ack=True)
                if method is None:
                    return False
                taken.append((properties, body))
            return True

        try:
            wait_until(all_taken, timeout, what=f"{count} dead letters")
        except WaitTimeout:
            pass
        return taken

    def replay(self, properties, event) -> None:
        """Publish the event again as it now stands in the outbox, with the dead letter's headers."""
        headers = {k: v for k, v in (properties.headers or {}).items() if not k.startswith("x-")}
        self.publish(event.to_json(), {**headers, REPLAYED: True}, properties.message_id)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()
