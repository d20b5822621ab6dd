"""The RabbitMQ objects of one namespace, declared the same way by every process that uses them.

- `<ns>.events`: durable topic exchange; routing keys are event types (`product.created`).
- `<ns>.projector`: durable queue bound to every event. Unlike the seed's exclusive auto-delete
  queue, it keeps events while no projector is running.
- `<ns>.dead-letter` / `<ns>.projector.dead`: where a message goes that the projector rejects
  as unreadable, so it is kept for inspection and replay instead of being dropped.
- `<ns>.applied`: fanout exchange of the projector's notices of what it applied (`read.notices`);
  each query service binds a queue of its own, gone with its connection.

With `partitions` N > 1 (`messaging.partitions`), `<ns>.projector` gives way to N queues
`<ns>.projector.p<k>`, each bound to the headers exchange `<ns>.partitions` on its `partition`
header; that exchange receives every event from `<ns>.events`. Each partition queue is
*single active consumer*: any number of projectors subscribe, the broker delivers to one of
them at a time and hands the queue to the next when that one goes away. Which layout a namespace
has is recorded (`read.partition_layout`), so a process started with another N cannot split a
queue's events across two layouts.
"""

from __future__ import annotations

import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from cqrs_demo.config import Settings
from cqrs_demo.messaging.partitions import PARTITION

MAX_PARTITIONS = 16  # CQRS_PARTITIONS' upper bound: what a reset looks for


def declare_exchange(channel: BlockingChannel, settings: Settings) -> None:
    channel.exchange_declare(settings.exchange, exchange_type="topic", durable=True)


def declare_projector_queue(channel: BlockingChannel, settings: Settings) -> None:
    declare_exchange(channel, settings)
    if settings.partitions > 1:
        _declare_partitions(channel, settings)
        return
    if settings.naive:
        # The seed's queue: gone when its consumer disconnects, and every event with it.
        channel.queue_declare(settings.projector_queue, exclusive=True, auto_delete=True)
        channel.queue_bind(settings.projector_queue, settings.exchange, routing_key="#")
        return
    _declare_dead_letters(channel, settings)
    channel.queue_declare(
        settings.projector_queue,
        durable=True,
        arguments={"x-dead-letter-exchange": settings.dead_letter_exchange},
    )
    channel.queue_bind(settings.projector_queue, settings.exchange, routing_key="#")


def _declare_dead_letters(channel: BlockingChannel, settings: Settings) -> None:
    channel.exchange_declare(settings.dead_letter_exchange, exchange_type="fanout", durable=True)
    channel.queue_declare(settings.dead_letter_queue, durable=True)
    channel.queue_bind(settings.dead_letter_queue, settings.dead_letter_exchange)


def _declare_partitions(channel: BlockingChannel, settings: Settings) -> None:
    channel.exchange_declare(settings.partition_exchange, exchange_type="headers", durable=not settings.naive,
                             auto_delete=settings.naive)
    channel.exchange_bind(settings.partition_exchange, settings.exchange, routing_key="#")
    arguments: dict = {"x-single-active-consumer": True}
    if settings.naive:
        # As the seed's queue, gone with its last consumer; shared, since an exclusive queue
        # cannot have a standby consumer on another connection.
        options = {"auto_delete": True}
    else:
        _declare_dead_letters(channel, settings)
        options = {"durable": True}
        arguments["x-dead-letter-exchange"] = settings.dead_letter_exchange
    for k, queue in enumerate(settings.projector_queues):
        channel.queue_declare(queue, arguments=arguments, **options)
        channel.queue_bind(queue, settings.partition_exchange, arguments={"x-match": "all", PARTITION: k})


def partition_depths(channel_of, settings: Settings) -> list[tuple[int, int] | None]:
    """(messages ready, consumers) of each of the projector's queues; None for one that is missing.

    `channel_of()` gives a channel, reopened if the broker closed it (a failed passive declare does).
    """
    found: list[tuple[int, int] | None] = []
    for queue in settings.projector_queues:
        try:
            method = channel_of().queue_declare(queue, passive=True).method
            found.append((method.message_count, method.consumer_count))
        except pika.exceptions.ChannelClosedByBroker as exc:
            # 405: an exclusive (naive) queue, locked by the projector that owns it
            found.append((0, 1) if exc.reply_code == 405 else None)
    return found


def owned_names(settings: Settings) -> tuple[list[str], list[str]]:
    """(queues, exchanges) a namespace may have declared, in either delivery mode."""
    queues = [settings.with_(delivery="outbox").projector_queue, settings.dead_letter_queue,
              settings.with_(delivery="naive").projector_queue]
    for delivery in ("outbox", "naive"):  # every layout the namespace may have had
        queues += settings.with_(delivery=delivery, partitions=MAX_PARTITIONS).projector_queues
    return queues, [settings.exchange, settings.dead_letter_exchange, settings.partition_exchange,
                    settings.applied_exchange]


def delete_all(channel: BlockingChannel, settings: Settings) -> None:
    queues, exchanges = owned_names(settings)
    naive = set(settings.with_(delivery="naive", partitions=MAX_PARTITIONS).projector_queues)
    naive.add(settings.with_(delivery="naive").projector_queue)
    for queue in queues:  # the naive queues delete themselves with their consumers; deleting the
        if queue not in naive:  # exclusive one here would fail on a running naive projector
            channel.queue_delete(queue)
    for exchange in exchanges:
        channel.exchange_delete(exchange)


class ReopeningChannel:
    """A connection's channel, reopened when the broker closed it (as a failed passive declare does)."""

    def __init__(self, connection, channel=None) -> None:
        self.connection = connection
        self.channel = channel

    def __call__(self) -> BlockingChannel:
        if self.channel is None or self.channel.is_closed:
            self.channel = self.connection.channel()
        return self.channel
