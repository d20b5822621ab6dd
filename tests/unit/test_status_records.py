"""The status collection holds the projector's counters, each partition's record and the
watermark's applied runs side by side, so that a flush records all three in one bulk write."""

from __future__ import annotations

from cqrs_demo.read import partition_status, projection, watermark
from cqrs_demo.read.versioned import Outcome
from mongo_double import FakeDatabase
from sample_events import product_created


def test_the_watermark_walks_only_applied_runs_among_the_other_status_records():
    db = FakeDatabase()
    one, two = product_created(1), product_created(2)
    writes = [projection.status_write([(one, Outcome.APPLIED), (two, Outcome.APPLIED)], lag_ms=1.0),
              *partition_status.flush_writes("proj-a", [], lag_ms=1.0),
              *watermark.record_writes([(1, 10), (2, 12), (4, 20)])]
    db[projection.STATUS].bulk_write(writes, ordered=False)
    db[projection.STATUS].bulk_write(partition_status.depth_writes([(3, 1)]), ordered=False)
    assert watermark.advance(db) == {"sequence": 2, "position": 12}  # 3 is missing: the walk stops there
    watermark.record(db, [(3, 15)])
    assert watermark.advance(db) == {"sequence": 4, "position": 20}
    remaining = {doc["_id"] for doc in db[projection.STATUS].find()}
    assert remaining == {"projector", "watermark", partition_status.record_id(0)}  # walked runs are deleted


def test_records_an_earlier_version_kept_apart_are_adopted_and_their_collections_dropped():
    db = FakeDatabase()
    db[watermark.LEGACY].insert_many([{"first": 1, "last": 3, "through": 30}, {"first": 4, "last": 4, "through": 41}])
    db[partition_status.LEGACY].insert_many([{"_id": 0, "consumer": "old", "applied": 7, "watermark": 41}])
    watermark.adopt_legacy(db)
    partition_status.adopt_legacy(db)
    assert watermark.advance(db) == {"sequence": 4, "position": 41}
    [row] = partition_status.partitions_view(db, 1, live_consumers=set())
    assert (row["consumer"], row["applied"], row["watermark"]) == ("old", 7, 41)
    assert not db[watermark.LEGACY].docs and not db[partition_status.LEGACY].docs
