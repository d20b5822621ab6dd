"""Each partition's status, as the projectors see it: who consumes it, how deep, how far applied.

One record per partition in the status collection (`projection_status`, `_id`: "partition:K"),
written by whichever projector touches it:
- on every flush, per partition the batch held: the projector's consumer id (it is the one the
  broker delivers to: single active consumer), the outbox position and publication number of the
  newest event it applied there, the lag at that application, and counts of applied events and
  gap retries;
- on every tick, by every projector: the queue's depth and consumer count (a passive declare).

The partition's `watermark` is the position of the newest event applied from it. One consumer
applies a partition's queue in order, so every event of that partition published before it has
been applied too, apart from events held behind a poison message (the namespace's watermark,
`read.watermark`, stays exact for those).

The records share the status collection with the projector's counters and the watermark's
applied runs, so that a flush records all three in one bulk write (`flush_writes`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from pymongo import UpdateOne

from cqrs_demo.messaging import headers as message_headers
from cqrs_demo.messaging.partitions import PARTITION
from cqrs_demo.read.versioned import Outcome

STATUS = "projection_status"  # read.projection.STATUS
LEGACY = "partition_status"  # where earlier versions kept these records (`adopt_legacy`)


def record_id(partition: int) -> str:
    return f"partition:{partition}"


def _partition(headers: dict[str, Any]) -> int | None:
    value = (headers or {}).get(PARTITION)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def flush_writes(consumer: str, results: Iterable[tuple[Any, Outcome, dict[str, Any]]],
                 lag_ms: float | None) -> list[UpdateOne]:
    """What one flush did to each partition it held events of (results: event, outcome, headers),
    as writes to the status collection."""
    now = datetime.now(timezone.utc)
    per_partition: dict[int, dict[str, Any]] = {}
    for event, outcome, headers in results:
        k = _partition(headers)
        if k is None:
            continue
        entry = per_partition.setdefault(k, {"applied": 0, "gaps": 0, "position": 0, "sequence": 0})
        if outcome is Outcome.GAP:
            entry["gaps"] += 1
            continue
        entry["applied"] += outcome is Outcome.APPLIED
        entry["position"] = max(entry["position"], event.position)
        publication = message_headers.publication_of(headers)
        if publication:
            entry["sequence"] = max(entry["sequence"], publication[0])
    writes = []
    for k, entry in per_partition.items():
        update: dict[str, Any] = {
            "$set": {"consumer": consumer, "consumer_seen_at": now},
            "$inc": {"applied": entry["applied"], "gaps": entry["gaps"]},
        }
        if entry["position"]:
            update["$max"] = {"watermark": entry["position"], "sequence": entry["sequence"]}
            if lag_ms is not None:
                update["$set"]["lag_ms"] = round(lag_ms, 3)
        update["$set"]["partition"] = k
        writes.append(UpdateOne({"_id": record_id(k)}, update, upsert=True))
    return writes


def depth_writes(counts: list[tuple[int, int] | None]) -> list[UpdateOne]:
    """Each partition queue's (depth, consumers), as a tick measured them."""
    now = datetime.now(timezone.utc)
    return [
        UpdateOne({"_id": record_id(k)},
                  {"$set": {"partition": k, "depth": c[0], "consumers": c[1], "checked_at": now}}, upsert=True)
        for k, c in enumerate(counts) if c is not None
    ]


def record_ids(partitions: int) -> list[str]:
    return [record_id(k) for k in range(partitions)]


def partitions_view(db, partitions: int, live_consumers: set[str],
                    records: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per partition 0 .. partitions-1, as `/api/projection` serves them; from `records`
    (the status collection's documents by `_id`) when the caller has read them already."""
    if records is None:
        records = {doc["_id"]: doc for doc in db[STATUS].find({"_id": {"$in": record_ids(partitions)}})}
    rows = []
    for k in range(partitions):
        doc = records.get(record_id(k), {})
        consumer = doc.get("consumer")
        rows.append({
            "partition": k,
            "consumer": consumer,
            "consumer_alive": consumer in live_consumers if consumer else False,
            "depth": doc.get("depth"),
            "consumers": doc.get("consumers"),
            "watermark": doc.get("watermark", 0),
            "lag_ms": doc.get("lag_ms"),
            "applied": doc.get("applied", 0),
            "gaps": doc.get("gaps", 0),
        })
    return rows


def adopt_legacy(db) -> None:
    """Move the records an earlier version kept in a collection of their own into the status
    collection (where the newer record of a partition wins), and drop that collection."""
    legacy = db[LEGACY]
    docs = list(legacy.find())
    if not docs:
        return
    writes = [UpdateOne({"_id": record_id(doc["_id"])},
                        {"$setOnInsert": {**{k: v for k, v in doc.items() if k != "_id"}, "partition": doc["_id"]}},
                        upsert=True)
              for doc in docs if isinstance(doc["_id"], int)]
    if writes:
        db[STATUS].bulk_write(writes, ordered=False)
    legacy.drop()
