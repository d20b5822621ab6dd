"""Rebuilding the read model from the event log, which the outbox keeps in full.

The outbox holds every event the write side ever committed, in position order, so the read
model is a pure function of it: drop the read collections, replay every event through the
same `projection.project` the projector uses, and the result equals what the live projector
built. Because every write is version-checked, a projector that keeps running meanwhile does
no harm: whatever it applies first, the rebuild finds as a duplicate, and vice versa.
"""

from __future__ import annotations

from typing import Callable, Iterator

import sqlalchemy as sa

from cqrs_demo.messaging.events import Event
from cqrs_demo.read import poison, projection
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import outbox

READ_COLLECTIONS = (
    projection.PRODUCTS,
    projection.SALES,
    projection.ORDERS,
    projection.STATUS,
    poison.POISONED,
    poison.PARKED,
)


def event_log(engine, batch: int = 1000) -> Iterator[Event]:
    """Every committed event, oldest first, read in batches so memory stays flat."""
    after = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox).where(outbox.c.position > after).order_by(outbox.c.position).limit(batch)
            ).all()
        if not rows:
            return
        for row in rows:
            yield event_from_row(row)
        after = rows[-1].position


def count_events(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(outbox))


def rebuild(engine, db, progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Drop the read model and replay the whole event log into it; counts of each outcome."""
    for name in READ_COLLECTIONS:
        db[name].drop()
    projection.ensure_indexes(db)
    counts: dict[str, int] = {}
    for event in event_log(engine):
        outcome = projection.project(db, event, {"rebuilt": True})
        projection.record_status(db, event, outcome, None)
        counts[outcome.value] = counts.get(outcome.value, 0) + 1
        if progress:
            progress(1)
    return counts
