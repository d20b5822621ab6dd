"""Which partition layout a namespace has, recorded so that N cannot change under queued events.

A product's partition depends on N (`partitions.partition_for`), so events queued under one N
and events published under another may sit in two different queues: a projector could apply a
product's later event before an earlier one still waiting in the old queue (the version check
would refuse it, and it would be retried for as long as the old queue is not drained). So the
namespace's N is recorded in its read database (`partition_layout`, `_id: "layout"`), and every
relay and projector declares its queues through `declare`:

- the same N as recorded: declare, as always;
- another N, and the old layout's queues are empty and nobody consumes them: the old queues are
  deleted, the new N recorded, the new queues declared (a change "with a drain");
- another N while the old queues hold events or have consumers: refused, with
  `PartitionLayoutChanged` saying how to drain.

A namespace with no record has the layout of before partitions existed: one queue.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pika.exceptions

from cqrs_demo.config import Settings
from cqrs_demo.messaging import topology

LAYOUT = "partition_layout"
RECORD = "layout"


class PartitionLayoutChanged(RuntimeError):
    """This process's CQRS_PARTITIONS differs from the namespace's, whose queues are not drained."""


def recorded(db) -> int:
    doc = db[LAYOUT].find_one({"_id": RECORD}) or {}
    return int(doc.get("partitions", 1))


def refusal(settings: Settings, old: int, waiting: int, consumers: int) -> str:
    return (
        f"namespace {settings.namespace} has {old} projector queue(s) (CQRS_PARTITIONS={old}) holding "
        f"{waiting} event(s), with {consumers} consumer(s); starting with CQRS_PARTITIONS={settings.partitions} "
        f"now would split products' events across two layouts, out of order. To change it: stop the relay "
        f"(new events wait in the outbox), let the projectors drain the queues (`cqrs-demo check --wait 60` "
        f"passes), stop the projectors, then start the relay and projectors with CQRS_PARTITIONS="
        f"{settings.partitions}. Or keep CQRS_PARTITIONS={old}."
    )


def declare(channel_of, settings: Settings, db) -> None:
    """Declare the projector's queues of `settings.partitions`, switching or refusing as above.

    `channel_of()` gives an open channel (a new one after the broker closed the last). With no
    read database (`db` None: a relay without CQRS_MONGO_URL) nothing is recorded or checked.
    """
    old = recorded(db) if db is not None else settings.partitions
    if old != settings.partitions:
        _switch(channel_of, settings.with_(partitions=old), settings, db)
    topology.declare_projector_queue(channel_of(), settings)


def _switch(channel_of, old: Settings, new: Settings, db) -> None:
    counts = [c for c in topology.partition_depths(channel_of, old) if c is not None]
    waiting, consumers = sum(c[0] for c in counts), sum(c[1] for c in counts)
    if waiting or consumers:
        raise PartitionLayoutChanged(refusal(new, old.partitions, waiting, consumers))
    for queue in old.projector_queues:
        try:  # if_empty: an event published since the count above makes this fail, not vanish
            channel_of().queue_delete(queue, if_empty=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise PartitionLayoutChanged(refusal(new, old.partitions, 1, 0)) from exc
    if old.partitions > 1:
        channel_of().exchange_delete(old.partition_exchange)
    db[LAYOUT].update_one(
        {"_id": RECORD},
        {"$set": {"partitions": new.partitions, "changed_at": datetime.now(timezone.utc), "from": old.partitions}},
        upsert=True,
    )
