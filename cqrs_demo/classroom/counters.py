"""A stack's anomaly counters, as the instructor's view shows them for each student's runs.

Read from the stack itself, so they mean the same on any machine:
- from the projector's status record (its MongoDB database, `projection_status`): `applied`,
  `duplicates` (copies it recognised and skipped), `gaps` (events that came before their
  predecessor and were retried), `reapplied` and `overwrote_newer` (what happens with the version
  check switched off), `dead_lettered` and `parked` (poison messages and the events held behind them);
- `held`: products held because one of their events is in the dead-letter queue;
- `committed`: events the write side committed (its outbox and event log in PostgreSQL), and `not_applied`:
  committed events the projector has not applied: lost (naive delivery), in flight, or poison.

The exact per-event anomaly counts (lost, applied twice, out of order) need the projection audit;
`cqrs_demo.lab.anomalies.measure` computes them, and a stack keeps the last one in the registry.
"""

from __future__ import annotations

import sqlalchemy as sa

from cqrs_demo.read import poison, projection
from cqrs_demo.write import event_log

STATUS_COUNTERS = ("applied", "duplicates", "gaps", "reapplied", "overwrote_newer", "dead_lettered", "parked")
SHOWN = ("committed", "not_applied", "duplicates", "gaps", "reapplied", "overwrote_newer", "dead_lettered", "held")


def from_read_model(db) -> dict[str, int]:
    """The projector's counters from a stack's read database (zeros before its first event)."""
    status = db[projection.STATUS].find_one({"_id": "projector"}) or {}
    counts = {name: int(status.get(name) or 0) for name in STATUS_COUNTERS}
    counts["held"] = db[poison.POISONED].count_documents({})
    return counts


def committed_events(engine, schema: str) -> int | None:
    """How many events the namespace's write side committed (its outbox and its event log);
    None when it has no such tables (not yet, or not any more)."""
    with engine.connect() as conn:
        tables = sa.inspect(conn)
        if not all(tables.has_table(name, schema=schema) for name in ("outbox", "event_log")):
            return None
    return event_log.count_events(engine.execution_options(schema_translate_map={None: schema}))


def with_committed(counts: dict[str, int], committed: int | None) -> dict[str, int]:
    """`counts` with `committed` and `not_applied`. With the version check on, an event is counted
    `applied` once at most, so `not_applied` is exact once the projector has caught up; with it off,
    a redelivered event can count again, and `not_applied` is a lower bound."""
    if committed is None:
        return dict(counts)
    return {**counts, "committed": committed, "not_applied": max(0, committed - counts.get("applied", 0))}
