"""One message in the projector's hands: the event it carries, or why it cannot be read.

A body that is not an event of this contract is *unreadable*; its headers may still name its
stream (`messaging.headers`), which is what lets the projector hold that stream. An event of a
schema version newer than the projector knows is kept, with `UnknownSchemaVersion` as the reason
it cannot be applied yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cqrs_demo.messaging import headers as message_headers
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.messaging.headers import StreamRef
from cqrs_demo.read.upcasting import UnknownSchemaVersion, Upcasters


@dataclass
class Delivery:
    """One message in hand: what it carries, or why it cannot be read."""

    method: Any
    headers: dict[str, Any]
    body: bytes
    message_id: str | None
    event: Event | None = None
    unreadable: MalformedEvent | None = None
    channel: Any = None  # the channel it came on, where it is acknowledged
    kept_since: float | None = None  # when it was first kept in hand as a gap (`kept_gaps`)

    @property
    def stream(self) -> StreamRef | None:
        return StreamRef.of(self.event) if self.event else message_headers.stream_of(self.headers)

    @property
    def event_id(self) -> str | None:
        if self.event:
            return self.event.event_id
        stream = self.stream
        return (stream and stream.event_id) or self.message_id

    @property
    def redelivered(self) -> bool:
        return bool(self.method.redelivered)


def read_delivery(method, properties, body: bytes, upcasters: Upcasters) -> Delivery:
    """The delivery, its event upcast to the newest version `upcasters` knows, or why not."""
    delivery = Delivery(method, properties.headers or {}, body, properties.message_id)
    try:
        delivery.event = upcasters.upcast(Event.from_json(body))
    except UnknownSchemaVersion as exc:
        delivery.event = Event.from_json(body)
        delivery.unreadable = exc
    except MalformedEvent as exc:
        delivery.event = None
        delivery.unreadable = exc
    return delivery
