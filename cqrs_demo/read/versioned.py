"""Version-checked writes: how the read model applies each event exactly once, in order.

A read document carries the version of the last event applied to it. An event of version `v`
is applied only to the document at version `v - 1` (or, for `v == 1`, only when no document
exists), in one conditional MongoDB write. So:
- a duplicate, or an event older than the document, matches nothing: acknowledged, no effect;
- an event is never applied over a newer one;
- an event that arrives before its predecessor is a gap: it is not applied, and the caller
  retries it later instead of skipping the missing one.
The document is its own tracking record, so there is no second write to lose in a crash, and
two projectors racing on one document cannot both win.
"""

from __future__ import annotations

import enum
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    GAP = "gap"
    # Only with deduplication switched off, to show what the version check prevents:
    REAPPLIED = "reapplied"  # applied again on top of itself: a sale counted twice
    OVERWROTE_NEWER = "overwrote_newer"  # an old event applied over a newer state

    @staticmethod
    def combine(outcomes: list["Outcome"]) -> "Outcome":
        """An event touching several documents: the most telling outcome of its writes."""
        for outcome in (Outcome.GAP, Outcome.OVERWROTE_NEWER, Outcome.REAPPLIED, Outcome.APPLIED):
            if outcome in outcomes:
                return outcome
        return Outcome.DUPLICATE


def apply_versioned(
    collection: Collection,
    doc_id: Any,
    version: int,
    set_fields: dict[str, Any],
    inc_fields: dict[str, Any] | None = None,
) -> Outcome:
    if version == 1:
        try:
            collection.insert_one({"_id": doc_id, **(inc_fields or {}), **set_fields, "version": 1})
        except DuplicateKeyError:
            return Outcome.DUPLICATE
        return Outcome.APPLIED
    update = _update(version, set_fields, inc_fields)
    result = collection.update_one({"_id": doc_id, "version": version - 1}, update)
    if result.matched_count == 1:
        return Outcome.APPLIED
    current = collection.find_one({"_id": doc_id}, {"version": 1})
    if current is not None and current["version"] >= version:
        return Outcome.DUPLICATE
    return Outcome.GAP


def apply_unchecked(
    collection: Collection,
    doc_id: Any,
    version: int,
    set_fields: dict[str, Any],
    inc_fields: dict[str, Any] | None = None,
) -> Outcome:
    """Apply whatever arrives, as a consumer without deduplication does; report what that did."""
    before = collection.find_one_and_update({"_id": doc_id}, _update(version, set_fields, inc_fields), upsert=True)
    previous = before["version"] if before else 0
    if previous > version:
        return Outcome.OVERWROTE_NEWER
    if previous == version:
        return Outcome.REAPPLIED
    return Outcome.APPLIED


def _update(version: int, set_fields: dict[str, Any], inc_fields: dict[str, Any] | None) -> dict[str, Any]:
    update: dict[str, Any] = {"$set": {**set_fields, "version": version}}
    if inc_fields:
        update["$inc"] = inc_fields
    return update
