"""Generations of the read model: a rebuild builds beside the live one, then switches to it.

The read model's collections (products, their sales, orders) exist in *generations*. A pointer
document in the projection status collection (`_id: "generation"`) names the live generation
`g`, and, while a rebuild runs, the one being built. Generation `g`'s collections are
`<name>_g<g>`; generation 0 keeps the plain names, so a namespace that never rebuilt looks as
it always did.

Every reader and writer goes through the pointer (`Following`, `live`), so a rebuild can fill
generation g+1 while readers keep reading generation g, and switching is one compare-and-set
of the pointer: a read sees either the old complete model or the new complete one, never an
empty one. The projector's own records (the status record, held streams, parked events, the
attempt counts, the audit) describe the projector, not one generation, and are shared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cqrs_demo.messaging.events import Event
from cqrs_demo.read import projection
from cqrs_demo.read.batch import project_batch

POINTER = "generation"
REFRESH_SECONDS = 0.5  # the longest a follower goes on with a pointer it read
GENERATIONAL = (projection.PRODUCTS, projection.SALES, projection.ORDERS)


def collection_name(name: str, generation: int) -> str:
    """The name of read-model collection `name` in `generation` (0: the plain name)."""
    return name if generation == 0 or name not in GENERATIONAL else f"{name}_g{generation}"


@dataclass(frozen=True)
class Pointer:
    """The live generation and, while a rebuild runs, the generation it builds."""

    live: int = 0
    building: int | None = None


def raw(db):
    """The pymongo database under a generation view (or `db` itself)."""
    return db.database if isinstance(db, (ReadModel, Following)) else db


def pointer(db) -> Pointer:
    doc = raw(db)[projection.STATUS].find_one({"_id": POINTER}) or {}
    return Pointer(doc.get("live", 0), doc.get("building"))


class ReadModel:
    """A database whose read-model collections are those of one generation.

    `model["products"]` is generation g's products; any other name is the database's own
    collection, and anything else (`list_collection_names`, `client`...) is the database's.
    """

    def __init__(self, db, generation: int) -> None:
        self.database = raw(db)
        self.generation = generation

    def __getitem__(self, name: str):
        return self.database[collection_name(name, self.generation)]

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.database, attribute)

    def drop(self) -> None:
        """Drop this generation's read-model collections (never the shared ones)."""
        for name in GENERATIONAL:
            self.database[collection_name(name, self.generation)].drop()


class Following:
    """A database whose read-model collections are the live generation's, as of a recent look.

    For whoever holds a database for long (a service, the projector, a notebook). With
    `refresh_seconds=0` the pointer is read every time a read-model collection is asked for, so
    a switch is seen by the very next query. A busy writer (the projector) reads it at most every
    `refresh_seconds` (at most `REFRESH_SECONDS`): a rebuild waits that long after its switch
    before its last catch-up, so whatever such a writer applied to the old generation alone is
    caught up.
    """

    def __init__(self, db, refresh_seconds: float = 0.0) -> None:
        if refresh_seconds > REFRESH_SECONDS:
            raise ValueError(f"a follower may keep the pointer {REFRESH_SECONDS}s at most, not {refresh_seconds}s")
        self.database = raw(db)
        self.refresh_seconds = refresh_seconds
        self._pointer: Pointer | None = None
        self._looked_at = 0.0

    def pointer(self) -> Pointer:
        now = time.monotonic()  # taken before the read: the pointer is at least this recent
        if self._pointer is None or now - self._looked_at >= self.refresh_seconds:
            self._pointer, self._looked_at = pointer(self.database), now
        return self._pointer

    def __getitem__(self, name: str):
        if name not in GENERATIONAL:
            return self.database[name]
        return self.database[collection_name(name, self.pointer().live)]

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.database, attribute)


def live(db) -> ReadModel:
    """The live generation, pinned: for a reader that wants one consistent view (a check)."""
    return ReadModel(db, pointer(db).live)


def building(db) -> ReadModel | None:
    """The generation a rebuild is filling, if one runs (as of the follower's last look)."""
    generation = (db.pointer() if isinstance(db, Following) else pointer(db)).building
    return None if generation is None else ReadModel(db, generation)


def ensure_pointer(db) -> Pointer:
    raw(db)[projection.STATUS].update_one(
        {"_id": POINTER}, {"$setOnInsert": {"live": 0, "building": None}}, upsert=True)
    return pointer(db)


def claim_building(db, expected: Pointer, report: dict[str, Any]) -> bool:
    """Mark generation live+1 as being built, unless the pointer moved since `expected` was read."""
    result = raw(db)[projection.STATUS].update_one(
        {"_id": POINTER, "live": expected.live, "building": expected.building},
        {"$set": {"building": expected.live + 1, "rebuild": report}},
    )
    return result.matched_count == 1


def report_progress(db, generation: int, replayed: int) -> None:
    raw(db)[projection.STATUS].update_one(
        {"_id": POINTER, "building": generation},
        {"$set": {"rebuild.replayed": replayed, "rebuild.heartbeat_at": now()}},
    )


def switch(db, old: int, new: int, report: dict[str, Any]) -> bool:
    """Make `new` the live generation, if `old` still is and `new` is still the one being built."""
    result = raw(db)[projection.STATUS].update_one(
        {"_id": POINTER, "live": old, "building": new},
        {"$set": {"live": new, "building": None, "rebuild": None, "last_rebuild": report}},
    )
    return result.matched_count == 1


def abandon(db, generation: int, report: dict[str, Any]) -> None:
    """Stop building `generation`; the live one stays as it is."""
    raw(db)[projection.STATUS].update_one(
        {"_id": POINTER, "building": generation},
        {"$set": {"building": None, "rebuild": None, "last_rebuild": report}},
    )


def now() -> datetime:
    return datetime.now(timezone.utc)


def apply_to_building(db, events: list[Event]) -> None:
    """Apply what the projector just applied to the live generation to the one being built too.

    So the new generation stays current while it is built, and the rebuild's catch-up has little
    left to do. Outcomes do not matter here: a gap (the replay has not reached the predecessor
    yet) or a malformed event is the replay's to meet, and the live apply decides what the
    projector does with the message.
    """
    target = building(db)
    if target is not None and events:
        project_batch(target, [(event, {"mirrored": True}) for event in events])
