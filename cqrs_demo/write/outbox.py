"""Appending events to the outbox, inside the caller's transaction.

The insert also wakes the relay: a trigger on the table NOTIFYs it at commit (see `schema`).

The state change and its event commit together or not at all: that is what makes the outbox
lose nothing where the seed's "commit, then publish" lost events whenever the broker was away.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cqrs_demo.messaging.events import Event
from cqrs_demo.write.schema import outbox


# Built once and run with bound parameters: for a statement built per call SQLAlchemy computes a
# new cache key every time, a cost that showed in the command service's CPU per command.
# clock_timestamp(), not now(): now() is the transaction's start, and this row is the last
# statement before COMMIT, so its clock is the closest we get to the commit time.
_APPEND = (
    outbox.insert()
    .values(committed_at=sa.func.clock_timestamp())
    .returning(outbox.c.position, outbox.c.event_id, outbox.c.committed_at)
)


def append(
    conn: Connection,
    *,
    type: str,
    aggregate_type: str,
    aggregate_id: int,
    aggregate_version: int,
    payload: dict[str, Any],
    received_at: datetime,
    schema_version: int = 1,
) -> Event:
    row = conn.execute(_APPEND, {
        "event_id": str(uuid.uuid4()),
        "type": type,
        "aggregate_type": aggregate_type,
        "aggregate_id": aggregate_id,
        "aggregate_version": aggregate_version,
        "payload": payload,
        "schema_version": schema_version,
        "received_at": received_at,
    }).one()
    return Event(
        event_id=str(row.event_id),
        type=type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        position=row.position,
        committed_at=row.committed_at.isoformat(),
        payload=payload,
        schema_version=schema_version,
    )


def event_from_row(row) -> Event:
    return Event(
        event_id=str(row.event_id),
        type=row.type,
        aggregate_type=row.aggregate_type,
        aggregate_id=row.aggregate_id,
        aggregate_version=row.aggregate_version,
        position=row.position,
        committed_at=row.committed_at.isoformat(),
        payload=row.payload,
        schema_version=row.schema_version,
    )
