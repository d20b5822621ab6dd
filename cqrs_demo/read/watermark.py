"""The watermark: the outbox position up to which every event is applied to the read model.

The relay numbers what it publishes densely and stamps each message with its number
(`sequence`) and a *published-through* mark (see `messaging.publication` for why that is the
only sound source of such a mark). Here, on the read side:

- every event applied (or found already applied) records its number and mark in the status
  collection, in the same bulk write as its status, by whichever projector applied it; a
  flush's numbers are recorded as runs (`first`..`last`, with the largest mark among them), so
  a batch of 500 events in publication order costs one small document, not 500;
- `advance` walks the numbers contiguously from the current watermark: once every number up to
  `n` is recorded, every event at or below the marks of those numbers is applied, so the largest
  such mark becomes the watermark (`projection_status`, `_id: "watermark"`), and the walked
  records are deleted. A number not yet applied (a gap being retried, an event held behind a
  poison message, parked or dead-lettered) stops the walk, and the watermark with it.

Several projectors may record and advance at once: overlapping runs are the same facts twice,
the watermark only moves up (`$max`), and an advance that raced with another one simply finds
less to walk.
"""

from __future__ import annotations

from typing import Iterable

from pymongo import UpdateOne

STATUS = "projection_status"
RECORD = "watermark"
RUN = {"record": "applied"}  # what marks a run among the status collection's documents
LEGACY = "applied_sequences"  # where earlier versions kept the runs (`adopt_legacy`)
WALK_LIMIT = 50_000  # records read by one advance; the next one goes on from there


def record(db, publications: Iterable[tuple[int, int]]) -> None:
    """Record (sequence, published_through) of events now in the read model."""
    writes = record_writes(publications)
    if writes:
        db[STATUS].bulk_write(writes, ordered=False)


def record_writes(publications: Iterable[tuple[int, int]]) -> list[UpdateOne]:
    """`record`'s writes to the status collection, for the caller to send with its own."""
    runs: list[dict] = []
    for sequence, through in sorted(publications):
        if runs and sequence <= runs[-1]["last"] + 1:
            runs[-1]["last"] = max(runs[-1]["last"], sequence)
            runs[-1]["through"] = max(runs[-1]["through"], through)
        else:
            runs.append({"first": sequence, "last": sequence, "through": through})
    return [_run_write(**run) for run in runs]


def _run_write(first: int, last: int, through: int) -> UpdateOne:
    # An upsert, not an insert: MongoDB takes a bulk write's inserts and updates in separate
    # commands, and the status collection's other records are updates.
    return UpdateOne({"_id": f"applied:{first}-{last}"},
                     {"$setOnInsert": {**RUN, "first": first, "last": last}, "$max": {"through": through}},
                     upsert=True)


def current(db) -> dict:
    """{"sequence": n, "position": p}: every number up to n applied, every position up to p applied."""
    doc = db[STATUS].find_one({"_id": RECORD}) or {}
    return {"sequence": doc.get("sequence", 0), "position": doc.get("position", 0)}


def advance(db) -> dict:
    """Move the watermark over contiguous applied numbers; the watermark afterwards."""
    mark = current(db)
    sequence, position = mark["sequence"], mark["position"]
    walked = sequence
    for run in db[STATUS].find({**RUN, "last": {"$gt": sequence}}).sort([("first", 1)]).limit(WALK_LIMIT):
        if run["first"] > walked + 1:
            break
        walked = max(walked, run["last"])
        position = max(position, run["through"])
    if walked > sequence:
        db[STATUS].update_one({"_id": RECORD}, {"$max": {"sequence": walked, "position": position}}, upsert=True)
    db[STATUS].delete_many({**RUN, "last": {"$lte": walked}})
    return {"sequence": walked, "position": position}


def adopt_legacy(db) -> None:
    """Move runs an earlier version recorded in a collection of their own into the status
    collection, so that the walk finds them, and drop that collection."""
    legacy = db[LEGACY]
    writes = [_run_write(doc["first"], doc["last"], doc["through"]) for doc in legacy.find()]
    if writes:
        db[STATUS].bulk_write(writes, ordered=False)
    legacy.drop()
