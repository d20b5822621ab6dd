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
    product_event_version: int = 1  # which schema version of the product events to write

    def record(
        self, type: str, aggregate_type: str, aggregate_id: int, version: int, payload: dict[str, Any],
        schema_version: int = 1,
    ) -> Event:
        event = outbox.append(
            self.conn,
            type=type,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            payload=payload,
            received_at=self.received_at,
            schema_version=schema_version,
        )
        self.events.append(event)
        return event


@contextmanager
def command_transaction(
    engine: Engine, received_at: datetime | None = None, after_commit: Callable[[list[Event]], None] | None = None,
    product_event_version: int = 1,
) -> Iterator[CommandTransaction]:
    with engine.begin() as conn:
        tx = CommandTransaction(conn, received_at or datetime.now(timezone.utc),
                                product_event_version=product_event_version)
        yield tx
    if after_commit and tx.events:
        after_commit(tx.events)
