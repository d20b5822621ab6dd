"""Holding a product behind a poison message (`read/poison.py`): holds, parked copies, and how a
hold ends. Kept apart from the other apply rules so that a change to the poison semantics changes
this file alone.

`settle` is checked from each state a crash can leave (nothing applied yet, parked copies applied
but not deleted, deleted but the hold not released, released while a copy was parked) and with
copies that are duplicates, still gaps, or unreadable.
"""

from __future__ import annotations

import pytest

from cqrs_demo.messaging.headers import StreamRef
from cqrs_demo.read import poison, projection
from cqrs_demo.read.versioned import Outcome
from mongo_double import FakeDatabase
from sample_events import order_placed, product_created, product_updated, stock_changed


@pytest.fixture
def db():
    return FakeDatabase()


def ref(event) -> StreamRef:
    return StreamRef.of(event)


def apply(db):
    applied = []

    def apply_one(event, headers):
        outcome = projection.project(db, event)
        applied.append((event.aggregate_version, outcome))
        return outcome

    apply_one.applied = applied
    return apply_one


def park(db, event, headers=None) -> bool:
    return poison.park(db, ref(event), event.event_id, event.to_json(), headers or {})


def at_version(db, pid: int, version: int) -> None:
    projection.project(db, product_created(pid))
    for v in range(2, version + 1):
        assert projection.project(db, product_updated(pid, v)) is Outcome.APPLIED


def test_a_hold_waits_for_the_highest_version_set_aside(db):
    poison.hold(db, ref(stock_changed(7, 3)), "first reason")
    poison.hold(db, ref(stock_changed(7, 5)), "second reason")
    poison.hold(db, ref(stock_changed(7, 4)), "third reason")
    (record,) = list(db[poison.POISONED].find())
    assert record["_id"] == "product:7" and record["waits_for"] == 5
    assert record["reason"] == "first reason" and record["at"].tzinfo is not None


def test_holds_are_per_stream(db):
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    assert poison.held(db, ["product:7", "product:8", "order:7"]) == {"product:7"}
    assert poison.held(db, []) == set()


def test_a_long_reason_is_cut_to_500_characters(db):
    poison.hold(db, ref(stock_changed(7, 3)), "x" * 2000)
    assert len(db[poison.POISONED].find_one({"_id": "product:7"})["reason"]) == 500


def test_parking_needs_a_hold_and_keeps_one_copy(db):
    event = stock_changed(7, 4)
    assert not park(db, event), "no hold: the caller requeues the message"
    assert db[poison.PARKED].count_documents({}) == 0
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    assert park(db, event, {"sequence": 9, "published_through": 12, "x-death": []})
    assert park(db, event)
    (copy,) = list(db[poison.PARKED].find())
    assert (copy["key"], copy["version"], copy["headers"]) == ("product:7", 4, {"sequence": 9, "published_through": 12})


def test_settle_applies_parked_copies_in_order_and_releases(db):
    at_version(db, 7, 2)
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    for version in (5, 3, 4):
        park(db, product_updated(7, version))
    result = poison.settle(db, "product:7", applier := apply(db))
    assert applier.applied == [(3, Outcome.APPLIED), (4, Outcome.APPLIED), (5, Outcome.APPLIED)]
    assert result.released and poison.read_version(db, "product:7") == 5
    assert db[poison.POISONED].count_documents({}) == db[poison.PARKED].count_documents({}) == 0


def test_settle_stops_at_a_gap_and_keeps_the_hold(db):
    """Two poisoned events in a row: version 3 replayed and applied, version 4 still missing."""
    at_version(db, 7, 3)
    poison.hold(db, ref(stock_changed(7, 4)), "bad")
    for version in (5, 6):
        park(db, product_updated(7, version))
    result = poison.settle(db, "product:7", applier := apply(db))
    assert applier.applied == [(5, Outcome.GAP)] and not result.released
    assert db[poison.PARKED].count_documents({}) == 2, "nothing is deleted that was not applied"
    assert db[poison.POISONED].count_documents({}) == 1


def test_settle_does_not_release_before_the_held_version_is_applied(db):
    at_version(db, 7, 2)
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    assert not poison.settle(db, "product:7", apply(db)).released
    assert db[poison.POISONED].count_documents({}) == 1


@pytest.mark.parametrize("state", ["applied, not deleted", "deleted, not released", "released, a copy parked"])
def test_settle_finishes_what_a_crashed_settle_began(db, state):
    at_version(db, 7, 2)
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    for version in (3, 4):
        park(db, product_updated(7, version))
    if state != "released, a copy parked":
        for version in (3, 4):
            projection.project(db, product_updated(7, version))
    if state == "deleted, not released":
        db[poison.PARKED].delete_many({"key": "product:7"})
    if state == "released, a copy parked":
        db[poison.POISONED].delete_one({"_id": "product:7"})
    seen = []
    assert poison.settle(db, "product:7", apply(db), on_duplicate=seen.append).released
    assert poison.read_version(db, "product:7") == 4
    assert db[poison.POISONED].count_documents({}) == db[poison.PARKED].count_documents({}) == 0
    assert poison.streams_to_settle(db) == []
    if state == "applied, not deleted":
        assert len(seen) == 2, "duplicates' publication numbers still reach the watermark"


def test_settle_is_idempotent(db):
    at_version(db, 7, 2)
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    park(db, product_updated(7, 3))
    assert poison.settle(db, "product:7", apply(db)).released
    again = poison.settle(db, "product:7", applier := apply(db))
    assert again.released and applier.applied == []


def test_an_unreadable_parked_copy_stays_and_keeps_the_hold(db):
    at_version(db, 7, 2)
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    park(db, product_updated(7, 3))
    bad = product_updated(7, 4)
    park(db, bad)
    db[poison.PARKED].update_one({"_id": bad.event_id}, {"$set": {"event": "{truncated"}})
    result = poison.settle(db, "product:7", apply(db))
    assert result.blocked_by == bad.event_id and not result.released
    assert poison.read_version(db, "product:7") == 3
    assert db[poison.PARKED].find_one({"_id": bad.event_id}) is not None
    assert db[poison.POISONED].find_one({"_id": "product:7"})["blocked_by"]["event_id"] == bad.event_id


def test_streams_to_settle_are_the_held_ones_and_those_with_parked_copies(db):
    poison.hold(db, ref(stock_changed(7, 3)), "bad")
    poison.hold(db, ref(order_placed(2)), "bad")
    assert poison.streams_to_settle(db) == ["order:2", "product:7"]
    assert product_created  # sample events in use
