"""One command, one transaction: the state change and the events it records commit together."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from sqlalchemy.engine import Connection, Engine

from cqrs_demo.messaging.events import Event
from cqrs_demo.write import outbox


@dataclass
class CommandTransaction:
    conn: Connection
    received_at: datetime
    events: list[Event] = field(default_factory=list)

    def record(
        self, type: str, aggregate_type: str, aggregate_id: int, version: int, payload: dict[str, Any]
    ) -> Event:
        event = outbox.append(
            self.conn,
            type=type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            payload=payload,
            received_at=self.received_at,
        )
        self.events.append(event)
        return event


@contextmanager
def command_transaction(
    engine: Engine, received_at: datetime | None = None, after_commit: Callable[[list[Event]], None] | None = None
) -> Iterator[CommandTransaction]:
    with engine.begin() as conn:
        tx = CommandTransaction(conn, received_at or datetime.now(timezone.utc))
        yield tx
    if after_commit and tx.events:
        after_commit(tx.events)
