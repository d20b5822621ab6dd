"""The RabbitMQ objects of one namespace, declared the same way by every process that uses them.

- `<ns>.events`: durable topic exchange; routing keys are event types (`product.created`).
- `<ns>.projector`: durable queue bound to every event. Unlike the seed's exclusive auto-delete
  queue, it keeps events while no projector is running.
- `<ns>.dead-letter` / `<ns>.projector.dead`: where a message goes that the projector rejects
  as unreadable, so it is kept for inspection and replay instead of being dropped.
"""

from __future__ import annotations

from pika.adapters.blocking_connection import BlockingChannel

from cqrs_demo.config import Settings


def declare_exchange(channel: BlockingChannel, settings: Settings) -> None:
    channel.exchange_declare(settings.exchange, exchange_type="topic", durable=True)


def declare_projector_queue(channel: BlockingChannel, settings: Settings) -> None:
    declare_exchange(channel, settings)
    if settings.naive:
        # The seed's queue: gone when its consumer disconnects, and every event with it.
        channel.queue_declare(settings.projector_queue, exclusive=True, auto_delete=True)
        channel.queue_bind(settings.projector_queue, settings.exchange, routing_key="#")
        return
    channel.exchange_declare(settings.dead_letter_exchange, exchange_type="fanout", durable=True)
    channel.queue_declare(settings.dead_letter_queue, durable=True)
    channel.queue_bind(settings.dead_letter_queue, settings.dead_letter_exchange)
    channel.queue_declare(
        settings.projector_queue,
        durable=True,
        arguments={"x-dead-letter-exchange": settings.dead_letter_exchange},
    )
    channel.queue_bind(settings.projector_queue, settings.exchange, routing_key="#")


def owned_names(settings: Settings) -> tuple[list[str], list[str]]:
    """(queues, exchanges) a namespace may have declared, in either delivery mode."""
    queues = [settings.with_(delivery="outbox").projector_queue, settings.dead_letter_queue,
              settings.with_(delivery="naive").projector_queue]
    return queues, [settings.exchange, settings.dead_letter_exchange]


def delete_all(channel: BlockingChannel, settings: Settings) -> None:
    queues, exchanges = owned_names(settings)
    for queue in queues[:2]:  # the naive queue deletes itself with its consumer; deleting it here
        channel.queue_delete(queue)  # would fail on a running naive projector's exclusive queue
    for exchange in exchanges:
        channel.exchange_delete(exchange)
