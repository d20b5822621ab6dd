"""Poison messages: events the projector cannot apply, and what happens to their product's stream.

A message that fails `attempts` times in a row (or is not an event at all) is rejected to the
dead-letter queue, where it is kept for inspection and replay. Its product is then *held*: it
is recorded in `poisoned`, and every later event of that product is *parked* in the `parked`
collection (acknowledged, not applied) instead of being retried forever as a gap. Events of
other products flow on. When the fixed event is replayed and applied, the projector applies
the product's parked events in version order and releases the hold, so per-product order
survives the detour through the dead-letter queue.
"""

from __future__ import annotations

from datetime import datetime, timezone

from cqrs_demo.messaging.events import Event

POISONED = "poisoned"
PARKED = "parked"


def _key(event: Event) -> str:
    return f"{event.aggregate_type}:{event.aggregate_id}"


def hold(db, event: Event, reason: str) -> None:
    db[POISONED].update_one(
        {"_id": _key(event)},
        {"$setOnInsert": {"since_version": event.aggregate_version, "event_id": event.event_id,
                          "reason": reason[:500], "at": datetime.now(timezone.utc)}},
        upsert=True,
    )


def is_held(db, event: Event) -> bool:
    return db[POISONED].find_one({"_id": _key(event)}, {"_id": 1}) is not None


def park(db, event: Event) -> None:
    db[PARKED].update_one(
        {"_id": event.event_id},
        {"$setOnInsert": {"key": _key(event), "version": event.aggregate_version, "event": event.to_json().decode()}},
        upsert=True,
    )


def parked_events(db, event: Event) -> list[Event]:
    docs = db[PARKED].find({"key": _key(event)}).sort([("version", 1)])
    return [Event.from_json(doc["event"].encode()) for doc in docs]


def release(db, event: Event) -> None:
    db[PARKED].delete_many({"key": _key(event)})
    db[POISONED].delete_one({"_id": _key(event)})
