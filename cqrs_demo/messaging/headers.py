"""What a message says about its event outside its body: the AMQP headers every publisher sets.

The body is the event (`events.Event.to_json`). The headers repeat the event's identity, its
*stream* (`aggregate_type`, `aggregate_id`, `aggregate_version`), `event_id` and
`schema_version`, so a consumer still knows which product a message belongs to when the body
cannot be read at all: it can hold that product's stream instead of letting its later events
overtake the unreadable one. The relay adds where the event stands in the outbox (`position`)
and in the order of publication (`sequence`, `published_through`: see `messaging.publication`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from cqrs_demo.messaging.events import Event

AGGREGATE_TYPE = "aggregate_type"
AGGREGATE_ID = "aggregate_id"
AGGREGATE_VERSION = "aggregate_version"
EVENT_ID = "event_id"
SCHEMA_VERSION = "schema_version"
POSITION = "position"
SEQUENCE = "sequence"
PUBLISHED_THROUGH = "published_through"
PUBLISHED_AT = "published_at"


def for_event(event: Event, **extra: Any) -> dict[str, Any]:
    """The headers of a message carrying `event`, plus `extra` (None values left out)."""
    headers = {
        AGGREGATE_TYPE: event.aggregate_type,
        AGGREGATE_ID: event.aggregate_id,
        AGGREGATE_VERSION: event.aggregate_version,
        EVENT_ID: event.event_id,
        SCHEMA_VERSION: event.schema_version,
        POSITION: event.position,
    }
    headers.update({name: value for name, value in extra.items() if value is not None})
    return headers


@dataclass(frozen=True)
class StreamRef:
    """Which event of which stream a message claims to carry, read from its headers alone."""

    aggregate_type: str
    aggregate_id: int
    aggregate_version: int
    event_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.aggregate_type}:{self.aggregate_id}"

    @classmethod
    def of(cls, event: Event) -> "StreamRef":
        return cls(event.aggregate_type, event.aggregate_id, event.aggregate_version, event.event_id)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stream_of(headers: Mapping[str, Any] | None) -> StreamRef | None:
    """The stream named by a message's headers; None when they do not name one."""
    headers = headers or {}
    kind, aggregate_id, version = headers.get(AGGREGATE_TYPE), _int(headers.get(AGGREGATE_ID)), _int(headers.get(AGGREGATE_VERSION))
    if not isinstance(kind, str) or aggregate_id is None or version is None or version < 1:
        return None
    event_id = headers.get(EVENT_ID)
    return StreamRef(kind, aggregate_id, version, event_id if isinstance(event_id, str) else None)


def publication_of(headers: Mapping[str, Any] | None) -> tuple[int, int] | None:
    """(sequence, published_through) when the relay stamped the message; None otherwise."""
    headers = headers or {}
    sequence, through = _int(headers.get(SEQUENCE)), _int(headers.get(PUBLISHED_THROUGH))
    if sequence is None or through is None:
        return None
    return sequence, through
