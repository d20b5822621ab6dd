"""Applying a batch of events in a few bulk writes, with the same exactly-once rule as one by one.

The projector receives events in batches (its prefetch window). Within a batch, the changes to
one document usually form a run of consecutive versions v..w: they collapse into ONE
version-checked write (document at v-1 becomes w, fields as of w, increments summed), and all
the collapsed writes go to MongoDB in one bulk request per collection. Each write adds the
batch's id to the document's short list of recent batches; when the bulk result shows that not
every write landed, that list tells which runs did, and the events of the others are applied one by one by the ordinary
`projection.project`, which sorts out duplicates and gaps exactly as it always does.
A batch whose runs are not clean (the same version twice, a hole inside the batch) takes the
one-by-one path from the start. Either way, each event's outcome is what one-by-one would give.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.errors import BulkWriteError

from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.read import projection
from cqrs_demo.read.projection import Change
from cqrs_demo.read.versioned import Outcome

BATCH_FIELD = "recent_batches"
KEEP_BATCHES = 16  # how many batch ids a document remembers; a run is checked right after its write
Result = Outcome | MalformedEvent


def project_batch(db, items: list[tuple[Event, dict[str, Any]]]) -> list[Result]:
    """Apply (event, trace) pairs; per event its Outcome, or the MalformedEvent it raised."""
    results: list[Result | None] = [None] * len(items)
    runs: OrderedDict[tuple[str, Any], list[tuple[int, Change]]] = OrderedDict()
    for index, (event, trace) in enumerate(items):
        try:
            for change in projection.changes(event, trace):
                runs.setdefault((change.collection, change.doc_id), []).append((index, change))
        except MalformedEvent as exc:
            results[index] = exc
    pending = [i for i, result in enumerate(results) if result is None]
    if not _clean(runs):
        return _one_by_one(db, items, results, pending)
    landed = _bulk(db, runs)
    failed = {index for key, run in runs.items() if key not in landed for index, _ in run}
    for index in pending:
        if index not in failed:
            results[index] = Outcome.APPLIED
    return _one_by_one(db, items, results, sorted(failed))


def _clean(runs) -> bool:
    for run in runs.values():
        versions = [change.version for _, change in run]
        if versions != list(range(versions[0], versions[0] + len(versions))):
            return False
    return True


def _collapse(run: list[tuple[int, Change]], batch_id: str):
    first, last = run[0][1], run[-1][1]
    fields: dict[str, Any] = {}
    increments: dict[str, Any] = {}
    for _, change in run:
        fields.update(change.set)
        for name, amount in change.inc.items():
            increments[name] = increments.get(name, 0) + amount
    fields["version"] = last.version
    if first.version == 1:
        return InsertOne({"_id": first.doc_id, **increments, **fields, BATCH_FIELD: [batch_id]})
    # Pushed, not set: another projector's batch landing on the same document right after ours
    # must not erase the evidence that ours landed.
    update: dict[str, Any] = {"$set": fields, "$push": {BATCH_FIELD: {"$each": [batch_id], "$slice": -KEEP_BATCHES}}}
    if increments:
        update["$inc"] = increments
    return UpdateOne({"_id": first.doc_id, "version": first.version - 1}, update)


def _bulk(db, runs) -> set[tuple[str, Any]]:
    """Write every run; the keys of the runs that landed."""
    batch_id = uuid.uuid4().hex
    by_collection: OrderedDict[str, list[tuple[Any, Any]]] = OrderedDict()
    for (collection, doc_id), run in runs.items():
        by_collection.setdefault(collection, []).append((doc_id, _collapse(run, batch_id)))
    landed: set[tuple[str, Any]] = set()
    for collection, writes in by_collection.items():
        try:
            result = db[collection].bulk_write([write for _, write in writes], ordered=False)
            complete = result.inserted_count + result.matched_count == len(writes)
        except BulkWriteError:
            complete = False
        ids = [doc_id for doc_id, _ in writes]
        if complete:
            landed |= {(collection, doc_id) for doc_id in ids}
        else:
            tagged = db[collection].find({"_id": {"$in": ids}, BATCH_FIELD: batch_id}, {"_id": 1})
            landed |= {(collection, doc["_id"]) for doc in tagged}
    return landed


def _one_by_one(db, items, results: list, indexes: list[int]) -> list[Result]:
    for index in indexes:
        event, trace = items[index]
        try:
            results[index] = projection.project(db, event, trace)
        except MalformedEvent as exc:
            results[index] = exc
    return results
