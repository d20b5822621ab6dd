"""Generations of the read model (`read/generations.py`): naming, following the pointer, and the
compare-and-set steps a rebuild takes (claim, switch, abandon), each refused once the pointer moved.
"""

from __future__ import annotations

import pytest

from cqrs_demo.read import generations, poison, projection
from cqrs_demo.read.generations import Following, Pointer, ReadModel
from mongo_double import FakeDatabase
from sample_events import product_created, product_updated


@pytest.fixture
def db():
    return FakeDatabase()


def test_generation_zero_keeps_the_plain_names_and_later_ones_are_suffixed():
    assert generations.collection_name(projection.PRODUCTS, 0) == "products"
    assert generations.collection_name(projection.ORDERS, 2) == "orders_g2"
    assert generations.collection_name(projection.SALES, 1) == "sales_by_product_g1"
    # The projector's own records are shared by every generation.
    assert generations.collection_name(projection.STATUS, 3) == projection.STATUS
    assert generations.collection_name(poison.POISONED, 3) == poison.POISONED


def test_a_namespace_that_never_rebuilt_has_generation_zero(db):
    assert generations.pointer(db) == Pointer(live=0, building=None)
    assert Following(db)[projection.PRODUCTS].name == "products"


def test_following_sees_a_switch_at_the_next_access_and_a_pinned_model_does_not(db):
    following, pinned = Following(db), generations.live(db)
    current = generations.ensure_pointer(db)
    assert generations.claim_building(db, current, {"generation": 1})
    assert following[projection.PRODUCTS].name == "products"  # building is not live
    assert generations.switch(db, old=0, new=1, report={"generation": 1})
    assert following[projection.PRODUCTS].name == "products_g1"
    assert pinned[projection.PRODUCTS].name == "products"
    assert generations.pointer(db) == Pointer(live=1, building=None)


def test_only_one_claim_wins_and_a_switch_needs_the_pointer_as_claimed(db):
    current = generations.ensure_pointer(db)
    assert generations.claim_building(db, current, {"generation": 1})
    assert not generations.claim_building(db, current, {"generation": 1})  # read before the first claim
    assert not generations.switch(db, old=0, new=2, report={})  # not the generation being built
    generations.abandon(db, 1, {"generation": 1, "state": "failed"})
    assert generations.pointer(db) == Pointer(live=0, building=None)
    assert not generations.switch(db, old=0, new=1, report={})  # abandoned: nothing to switch to


def test_the_projector_applies_to_the_generation_being_built_too(db):
    generations.apply_to_building(db, [product_created(1)])
    assert db["products_g1"].find_one({"_id": 1}) is None  # no rebuild: nothing to mirror
    generations.claim_building(db, generations.ensure_pointer(db), {"generation": 1})
    # A gap in the new generation (the replay has not reached version 1 yet) is no error.
    generations.apply_to_building(db, [product_updated(2, 2)])
    generations.apply_to_building(db, [product_created(1), product_updated(1, 2, name="Renamed")])
    assert db["products_g1"].find_one({"_id": 1})["version"] == 2
    assert db["products"].find_one({"_id": 1}) is None  # the live generation is the projector's own write


def test_dropping_a_generation_leaves_the_others_and_the_shared_records(db):
    for generation in (0, 1):
        ReadModel(db, generation)[projection.PRODUCTS].insert_one({"_id": 1, "version": 1})
    db[poison.POISONED].insert_one({"_id": "product:1", "waits_for": 2})
    ReadModel(db, 0).drop()
    assert db["products"].find_one({"_id": 1}) is None
    assert db["products_g1"].find_one({"_id": 1}) is not None
    assert db[poison.POISONED].find_one({"_id": "product:1"}) is not None


def test_a_busy_follower_keeps_the_pointer_it_read_for_a_bounded_time(db):
    busy = Following(db, refresh_seconds=generations.REFRESH_SECONDS)
    assert busy[projection.PRODUCTS].name == "products"
    generations.claim_building(db, generations.ensure_pointer(db), {"generation": 1})
    generations.switch(db, old=0, new=1, report={})
    # Still the old generation: the rebuild's last catch-up waits out this refresh.
    assert busy[projection.PRODUCTS].name == "products"
    assert Following(db)[projection.PRODUCTS].name == "products_g1"
    with pytest.raises(ValueError):
        Following(db, refresh_seconds=generations.REFRESH_SECONDS * 2)
