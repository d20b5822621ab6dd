"""Holding a product behind a poison message (`read/poison.py`), as its docstring describes today.

A held product's later events are parked (kept, not applied); the parked events come back in
version order; releasing drops the hold and what was parked. Kept apart from the other apply
rules so that a change to the poison semantics changes this file alone.
"""

from __future__ import annotations

import pytest

from cqrs_demo.messaging.events import Event
from cqrs_demo.read import poison
from mongo_double import FakeDatabase
from sample_events import order_placed, product_created, product_updated, stock_changed


@pytest.fixture
def db():
    return FakeDatabase()


def test_a_product_is_not_held_until_a_poison_message_holds_it(db):
    poisoned = stock_changed(7, 3)
    assert not poison.is_held(db, poisoned)
    poison.hold(db, poisoned, "payload of product.stock_changed does not fit the contract")
    assert poison.is_held(db, poisoned)


def test_the_hold_covers_every_event_of_that_product_and_only_that_product(db):
    poison.hold(db, stock_changed(7, 3), "bad")
    assert poison.is_held(db, product_updated(7, 4))
    assert poison.is_held(db, product_created(7))
    assert not poison.is_held(db, product_updated(8, 4))
    assert not poison.is_held(db, order_placed(7)), "order 7 is another stream than product 7"


def test_the_hold_records_the_first_poison_message_and_holding_again_changes_nothing(db):
    first, later = stock_changed(7, 3), stock_changed(7, 5)
    poison.hold(db, first, "first reason")
    poison.hold(db, first, "first reason")
    poison.hold(db, later, "second reason")
    (record,) = list(db[poison.POISONED].find())
    assert record["_id"] == "product:7"
    assert (record["since_version"], record["event_id"], record["reason"]) == (3, first.event_id, "first reason")
    assert record["at"].tzinfo is not None


def test_a_long_reason_is_cut_to_500_characters(db):
    poison.hold(db, stock_changed(7, 3), "x" * 2000)
    assert len(db[poison.POISONED].find_one({"_id": "product:7"})["reason"]) == 500


def test_parked_events_come_back_whole_and_in_version_order(db):
    parked = [stock_changed(7, 6), product_updated(7, 4, name="Four"), stock_changed(7, 5)]
    for event in parked:
        poison.park(db, event)
    back = poison.parked_events(db, product_created(7))
    assert [e.aggregate_version for e in back] == [4, 5, 6]
    assert all(isinstance(e, Event) for e in back)
    assert back == sorted(parked, key=lambda e: e.aggregate_version)  # every field survives the round trip


def test_parking_the_same_event_twice_keeps_one_copy(db):
    event = stock_changed(7, 4)
    poison.park(db, event)
    poison.park(db, event)
    assert poison.parked_events(db, event) == [event]


def test_parked_events_are_kept_per_product(db):
    poison.park(db, stock_changed(7, 4))
    poison.park(db, stock_changed(8, 4))
    assert [e.aggregate_id for e in poison.parked_events(db, product_created(7))] == [7]
    assert poison.parked_events(db, product_created(9)) == []


def test_release_drops_the_hold_and_the_parked_events_of_that_product_only(db):
    poison.hold(db, stock_changed(7, 3), "bad")
    poison.hold(db, stock_changed(8, 2), "bad")
    poison.park(db, stock_changed(7, 4))
    poison.park(db, stock_changed(8, 3))

    poison.release(db, stock_changed(7, 3))

    assert not poison.is_held(db, product_created(7))
    assert poison.parked_events(db, product_created(7)) == []
    assert poison.is_held(db, product_created(8))
    assert [e.aggregate_version for e in poison.parked_events(db, product_created(8))] == [3]


def test_releasing_a_product_that_is_not_held_is_harmless(db):
    poison.release(db, stock_changed(7, 3))
    assert not poison.is_held(db, stock_changed(7, 3))
