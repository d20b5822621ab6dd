"""Rebuilding the read model from the event log.

The event log (`write.event_log`: the archived events, then those still in the outbox) holds
every event the write side ever committed, in position order, so the read model is a pure
function of it: drop the read collections, replay every event through the same
`projection.project` the projector uses, and the result equals what the live projector built. Because every write is version-checked, a projector that keeps running meanwhile does
no harm: whatever it applies first, the rebuild finds as a duplicate, and vice versa.
"""

from __future__ import annotations

from typing import Callable

from cqrs_demo.read import poison, projection, watermark
from cqrs_demo.write.event_log import count_events, event_log

__all__ = ["READ_COLLECTIONS", "KEPT_STATUS", "count_events", "event_log", "rebuild"]  # count_events: the size of a rebuild

READ_COLLECTIONS = (
    projection.PRODUCTS,
    projection.SALES,
    projection.ORDERS,
    poison.POISONED,
    poison.PARKED,
)
# Kept across a rebuild: the watermark's record (every event it covers is replayed again) and
# the relay's report, which describe the event log, not the read model.
KEPT_STATUS = [watermark.RECORD, "relay"]


def rebuild(engine, db, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Drop the read model and replay the whole event log into it; counts of each outcome."""
    for name in READ_COLLECTIONS:
        db[name].drop()
    db[projection.STATUS].delete_many({"_id": {"$nin": KEPT_STATUS}})
    projection.ensure_indexes(db)
    counts: dict[str, int] = {}
    for event in event_log(engine):
        outcome = projection.project(db, event, {"rebuilt": True})
        projection.record_status(db, event, outcome, None)
        counts[outcome.value] = counts.get(outcome.value, 0) + 1
        if progress:
            progress(1)
    return counts
