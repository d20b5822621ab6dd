"""The event log: every event the write side ever committed, in position order.

An event is in exactly one of two tables at every commit: the outbox, until it has been
published and has aged past the retention, then `event_log` (see `retention`). Whatever needs
every event (a rebuild of the read model, the anomaly counters, a replay) reads them here, as
one log, and never has to know where a given event is kept.
"""

from __future__ import annotations

from typing import Iterator

import sqlalchemy as sa

from cqrs_demo.messaging.events import Event
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import event_log_table, outbox


def committed_events() -> sa.Subquery:
    """Both tables as one selectable with the outbox's columns (`.c.position`, `.c.event_id`, ...)."""
    archived = sa.select(*(event_log_table.c[column.name] for column in outbox.c))
    return sa.union_all(archived, sa.select(*outbox.c)).subquery("committed_events")


def event_log(engine, after: int = 0, batch: int = 1000) -> Iterator[Event]:
    """Every committed event with a position above `after`, oldest first, read `batch` at a time.

    The archived events and those still in the outbox are merged by position (a row that
    committed late can still be in the outbox while later ones are archived). Each batch is one
    statement, so a prune running meanwhile moves a row from one table to the other between
    batches, never out of sight. Like any reader of positions, it sees a row only once its
    transaction has committed: one still open when its position is passed is not read.
    """
    events = committed_events()
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(events).where(events.c.position > after).order_by(events.c.position).limit(batch)
            ).all()
        if not rows:
            return
        for row in rows:
            yield event_from_row(row)
        after = rows[-1].position


def count_events(engine) -> int:
    """How many events were ever committed."""
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(committed_events()))


def positions(engine) -> set[int]:
    """The position of every committed event: what a reader compares with what it has seen."""
    events = committed_events()
    with engine.connect() as conn:
        return set(conn.scalars(sa.select(events.c.position)))


def events_at(engine, wanted: set[int], batch: int = 1000) -> Iterator[Event]:
    """The committed events at these positions, oldest first (a position not committed is skipped)."""
    events = committed_events()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), batch):
        chunk = ordered[start:start + batch]
        with engine.connect() as conn:
            rows = conn.execute(sa.select(events).where(events.c.position.in_(chunk)).order_by(events.c.position)).all()
        for row in rows:
            yield event_from_row(row)
