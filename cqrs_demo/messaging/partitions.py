"""Which partition an event goes to: every event of one stream (one product) to the same one.

With `CQRS_PARTITIONS=N` the projector's queue is split into N queues (`messaging.topology`).
The relay (or, in naive mode, the command service) computes the partition of each event from
its stream alone and sends it as the `partition` header; a headers exchange routes it to queue
`<ns>.projector.p<k>`. Because the route depends on nothing but the stream's key and N, all of a
product's events land in one queue, in the order they were published, and a queue consumed by
one projector at a time (single active consumer) applies them in that order: no gap retries.

CRC-32 rather than Python's `hash()`: it is the same in every process and on every machine
(`hash()` of a string is salted per process), and every language has it, so a student can
compute a product's partition by hand, or in another tool, and find it where the code put it.
"""

from __future__ import annotations

import zlib

PARTITION = "partition"  # the message header the partition exchange routes on


def stream_key(aggregate_type: str, aggregate_id: int) -> str:
    """The key of a stream, as `StreamRef.key` spells it: `product:42`."""
    return f"{aggregate_type}:{aggregate_id}"


def partition_for(key: str, partitions: int) -> int:
    """The partition (0 .. partitions-1) of the stream `key` (`"product:42"`)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    return zlib.crc32(key.encode("utf-8")) % partitions


def partition_of(event, partitions: int) -> int:
    """The partition of an event (anything with `aggregate_type` and `aggregate_id`)."""
    return partition_for(stream_key(event.aggregate_type, event.aggregate_id), partitions)
