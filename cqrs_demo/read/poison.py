"""Held streams: what happens to a product's events while one of them cannot be applied.

An event that cannot be applied (it failed `poison_attempts` times, its message is not even an
event, or it is of a schema version this projector does not know) leaves a gap in its product's
stream. Its product is then *held*: a record in `poisoned` says which version the stream waits
for (`waits_for`: the highest version set aside so far). Every later event of that product that
arrives as a gap is *parked* in `parked` (its message acknowledged, its body and headers kept)
instead of being retried for ever. Events of other products flow on.

`settle` is how a hold ends, and the only way it does. It applies the stream's parked events in
version order, deletes each parked copy once the read model has its version (applied now, or a
duplicate), stops at the first one that is still a gap (or unreadable), and releases the hold
once the read model has caught up past the held version and past every parked event. It looks
only at MongoDB, never at how a replay went, so it is idempotent and safe to run after a crash at
any point, by any projector, any number of times. A projector settles every held stream when it
starts, and settles a stream whenever it applies (or finds a duplicate of) an event of a held
product: so a fixed event replayed from the dead-letter queue, a copy redelivered after a crash,
or the stream's next event all end the hold once nothing is missing any more. (A projector looks
for holds after applying only while the namespace has some: its periodic tick looks at every
hold, and settles each one whose awaited version the read model now has. So a hold made by
another projector since the last tick is settled by the tick instead.)

Parking and releasing race safely: a parker checks the hold still exists *after* storing the
parked copy (and if not, takes it back and requeues the message), and a releaser checks for
parked copies *after* deleting the hold (and if any, holds again and settles once more).
Parking and applying race safely too: the parker looks at the read model's version *after*
storing its copy and settles if the copy is next in line, while an applier settles *after* its
write; whichever comes second sees the other's work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.messaging.headers import StreamRef
from cqrs_demo.read import projection
from cqrs_demo.read.versioned import Outcome

log = logging.getLogger(__name__)

POISONED = "poisoned"
PARKED = "parked"
SETTLE_ROUNDS = 5  # a release that keeps finding newly parked copies tries again, boundedly

Apply = Callable[[Event, dict[str, Any]], Outcome]


def hold(db, stream: StreamRef, reason: str, event_id: str | None = None) -> None:
    """Hold `stream` until its version `stream.aggregate_version` (at least) is applied."""
    db[POISONED].update_one(
        {"_id": stream.key},
        {
            "$max": {"waits_for": stream.aggregate_version},
            "$setOnInsert": {"aggregate_type": stream.aggregate_type, "aggregate_id": stream.aggregate_id,
                             "event_id": event_id or stream.event_id, "reason": reason[:500],
                             "at": datetime.now(timezone.utc)},
        },
        upsert=True,
    )


def held(db, keys: list[str]) -> set[str]:
    """Which of these stream keys are held."""
    if not keys:
        return set()
    return {doc["_id"] for doc in db[POISONED].find({"_id": {"$in": list(set(keys))}}, {"_id": 1})}


def holds(db) -> dict[str, int | None]:
    """Every held stream's key, with the version it waits for; None for a stream whose parked
    copy this projector could not read (it waits for a projector that can, see `settle`)."""
    return {doc["_id"]: None if doc.get("blocked_by") else doc.get("waits_for", 0)
            for doc in db[POISONED].find({}, {"waits_for": 1, "blocked_by": 1})}


def park(db, stream: StreamRef, event_id: str, body: bytes, headers: dict[str, Any]) -> bool:
    """Keep a message of a held stream aside; False if the hold was released meanwhile (requeue it)."""
    kept_headers = {k: v for k, v in headers.items() if not k.startswith("x-")}
    db[PARKED].update_one(
        {"_id": event_id},
        {"$setOnInsert": {"key": stream.key, "version": stream.aggregate_version,
                          "event": body.decode(errors="replace"), "headers": kept_headers,
                          "at": datetime.now(timezone.utc)}},
        upsert=True,
    )
    if db[POISONED].find_one({"_id": stream.key}, {"_id": 1}) is not None:
        return True
    db[PARKED].delete_one({"_id": event_id})
    return False


@dataclass
class Settled:
    """What one `settle` did."""

    key: str
    applied: list[tuple[Event, Outcome]] = field(default_factory=list)
    released: bool = False
    blocked_by: str | None = None  # a parked copy that could not be read or applied


def settle(db, key: str, apply: Apply, on_duplicate: Callable[[dict[str, Any]], None] | None = None) -> Settled:
    """Apply what is parked for `key`, in order, and release its hold if nothing is missing any more.

    `apply(event, headers)` applies one event as the projector does (recording its status);
    `on_duplicate(headers)` is told of a parked copy dropped because the read model already has
    its version without it being applied here.
    """
    result = Settled(key)
    for _ in range(SETTLE_ROUNDS):
        current = _apply_parked(db, key, apply, on_duplicate, result)
        hold_doc = db[POISONED].find_one({"_id": key})
        waits_for = hold_doc["waits_for"] if hold_doc else 0
        ahead = db[PARKED].count_documents({"key": key, "version": {"$gt": current}})
        if ahead or current < waits_for:
            if hold_doc is None:  # parked copies without a hold (a releaser died): hold them again
                _rehold(db, key, current + 1)
            return result
        if hold_doc is not None and db[POISONED].delete_one({"_id": key, "waits_for": waits_for}).deleted_count == 0:
            continue  # held for a later version meanwhile: look again
        if db[PARKED].count_documents({"key": key}) == 0:
            result.released = True
            return result
        _rehold(db, key, waits_for or current + 1)  # parked while we released: once more
    return result


def _apply_parked(db, key: str, apply: Apply, on_duplicate, result: Settled) -> int:
    """Apply the parked copies that are next in line; the read model's version afterwards."""
    current = read_version(db, key)
    for doc in db[PARKED].find({"key": key}).sort([("version", 1)]):
        if doc["version"] <= current:
            if on_duplicate:
                on_duplicate(doc.get("headers") or {})
            db[PARKED].delete_one({"_id": doc["_id"]})
            continue
        try:
            event = Event.from_json(doc["event"].encode())
            outcome = apply(event, doc.get("headers") or {})
        except MalformedEvent as exc:
            log.error("parked copy %s of %s cannot be applied, the hold stays: %s", doc["_id"], key, exc)
            result.blocked_by = doc["_id"]
            db[POISONED].update_one({"_id": key}, {"$set": {"blocked_by": {"event_id": doc["_id"], "reason": str(exc)[:500]}}})
            break
        result.applied.append((event, outcome))
        if outcome is Outcome.GAP:
            break
        db[PARKED].delete_one({"_id": doc["_id"]})
        current = max(current, event.aggregate_version)
    return current


def _rehold(db, key: str, version: int) -> None:
    aggregate_type, _, aggregate_id = key.partition(":")
    hold(db, StreamRef(aggregate_type, int(aggregate_id), version), "parked events waiting")


def read_version(db, key: str) -> int:
    """The version the read model has of this stream (0: none yet)."""
    aggregate_type, _, aggregate_id = key.partition(":")
    collection = projection.read_collection(aggregate_type)
    if collection is None:
        return 0
    doc = db[collection].find_one({"_id": int(aggregate_id)}, {"version": 1})
    return doc["version"] if doc else 0


def streams_to_settle(db) -> list[str]:
    """Every stream held or with parked copies: what a projector settles when it starts."""
    keys = {doc["_id"] for doc in db[POISONED].find({}, {"_id": 1})}
    keys |= {doc["key"] for doc in db[PARKED].find({}, {"key": 1})}
    return sorted(keys)
