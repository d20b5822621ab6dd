"""Upcasting: reading every schema version of an event as the newest one this projector knows.

The write side may emit a new version of an event (`schema_version` 2) while older versions stay
in the queue, the dead-letter queue and the outbox for ever. The projection code is written for
the newest version only; for each older one an *upcaster* is registered, a pure function
`(type, from_version)` that turns a payload of `from_version` into one of `from_version + 1`.
`upcast` chains them, so a version-1 event reaches the projection as version 2 (or 3...).

A version newer than the newest this registry knows cannot be applied correctly (its fields may
mean something this code does not know). It is neither dropped nor dead-lettered as malformed:
`UnknownSchemaVersion` tells the projector to *hold* the event's stream until a projector that
knows the version takes over (see `poison`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from cqrs_demo.messaging import events
from cqrs_demo.messaging.events import Event, MalformedEvent

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class UnknownSchemaVersion(MalformedEvent):
    """An event of a schema version newer than this reader knows: to be held, not dropped."""


class Upcasters:
    """A registry of upcasters, and so of the newest version of each type its owner can apply."""

    def __init__(self, steps: Mapping[tuple[str, int], Upcaster] | None = None,
                 newest: Mapping[str, int] | None = None) -> None:
        self._steps: dict[tuple[str, int], Upcaster] = dict(steps or {})
        self._cap = dict(newest or {})

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: `fn` turns a payload of `from_version` into one of `from_version + 1`."""

        def decorate(fn: Upcaster) -> Upcaster:
            self._steps[(event_type, from_version)] = fn
            return fn

        return decorate

    def newest(self, event_type: str) -> int:
        version = 1
        while (event_type, version) in self._steps:
            version += 1
        return min(version, self._cap.get(event_type, version))

    def knowing_only(self, newest: Mapping[str, int]) -> "Upcasters":
        """The same registry, as a projector that knows each type only up to `newest` would be."""
        return Upcasters(self._steps, {**self._cap, **newest})

    def upcast(self, event: Event) -> Event:
        """The event as the newest version this registry knows; UnknownSchemaVersion if newer."""
        newest = self.newest(event.type)
        if event.schema_version > newest:
            raise UnknownSchemaVersion(
                f"{event.type} schema_version {event.schema_version} is newer than {newest}, the newest known here"
            )
        payload, version = event.payload, event.schema_version
        while version < newest:
            try:
                payload = self._steps[(event.type, version)](dict(payload))
            except (KeyError, TypeError, ValueError) as exc:
                raise MalformedEvent(f"{event.type} v{version} cannot be upcast: {exc!r}") from None
            version += 1
        if version == event.schema_version:
            return event
        return dataclasses.replace(event, payload=payload, schema_version=version)


UPCASTERS = Upcasters()


@UPCASTERS.register(events.PRODUCT_CREATED, 1)
@UPCASTERS.register(events.PRODUCT_UPDATED, 1)
def price_as_amount_and_currency(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 → v2: the bare amount was in the shop's one currency; v2 names it."""
    return {**payload, "price": events.price_v2(payload["price"])}


def upcast(event: Event) -> Event:
    return UPCASTERS.upcast(event)
