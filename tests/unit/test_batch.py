"""Applying a delivery batch in bulk (`read/batch.py`) with the same outcomes as one by one."""

from __future__ import annotations

import pytest
from pymongo import InsertOne, UpdateOne

from cqrs_demo.messaging.events import MalformedEvent
from cqrs_demo.read import projection
from cqrs_demo.read.batch import BATCH_FIELD, KEEP_BATCHES, project_batch
from cqrs_demo.read.projection import ORDERS, PRODUCTS, SALES
from cqrs_demo.read.versioned import Outcome
from mongo_double import FakeDatabase
from sample_events import (
    event,
    order_cancelled,
    order_placed,
    product_created,
    product_fields,
    product_updated,
    stock_changed,
)

APPLIED, DUPLICATE, GAP = Outcome.APPLIED, Outcome.DUPLICATE, Outcome.GAP
# What differs between two applications of the same events: when, and by which batch.
VOLATILE = {"projected_at", "trace", BATCH_FIELD}


class RecordingDatabase(FakeDatabase):
    """The double, remembering every bulk write: (collection, [operations])."""

    def __init__(self) -> None:
        super().__init__()
        self.bulk_writes: list[tuple[str, list]] = []

    def __getitem__(self, name):
        collection = super().__getitem__(name)
        if "bulk_write" not in vars(collection):
            original = collection.bulk_write

            def bulk_write(requests, ordered=True, _name=name, _original=original):
                self.bulk_writes.append((_name, list(requests)))
                return _original(requests, ordered=ordered)

            collection.bulk_write = bulk_write
        return collection


def items(*events) -> list:
    return [(e, {}) for e in events]


def prepared(*history) -> tuple[RecordingDatabase, FakeDatabase]:
    """Two read models with the same history applied: one for the batch, one for one-by-one."""
    batch_db, reference_db = RecordingDatabase(), FakeDatabase()
    for e in history:
        projection.project(batch_db, e)
        projection.project(reference_db, e)
    return batch_db, reference_db


def one_by_one(db, events) -> list:
    results = []
    for e in events:
        try:
            results.append(projection.project(db, e))
        except MalformedEvent as exc:
            results.append(exc)
    return results


def contents(db) -> dict:
    return {
        name: {doc["_id"]: {k: v for k, v in doc.items() if k not in VOLATILE} for doc in db[name].find()}
        for name in (PRODUCTS, SALES, ORDERS)
    }


def outcomes(results) -> list:
    return [type(r) if isinstance(r, MalformedEvent) else r for r in results]


def assert_same_as_one_by_one(history, batch) -> list:
    """The batch's outcomes and resulting read model are those of applying it one by one."""
    batch_db, reference_db = prepared(*history)
    results = project_batch(batch_db, items(*batch))
    assert outcomes(results) == outcomes(one_by_one(reference_db, batch))
    assert contents(batch_db) == contents(reference_db)
    return results


# --- clean runs collapse -------------------------------------------------------------------------


def test_a_new_products_run_becomes_one_insert_per_document_with_summed_sales():
    batch = [product_created(7), stock_changed(7, 2, quantity=2, units_sold=1, revenue="120.00"),
             stock_changed(7, 3, quantity=0, units_sold=2, revenue="240.00")]
    db, _ = prepared()
    assert project_batch(db, items(*batch)) == [APPLIED] * 3

    assert [name for name, _ in db.bulk_writes] == [SALES, PRODUCTS]
    for name, writes in db.bulk_writes:
        assert len(writes) == 1 and isinstance(writes[0], InsertOne), f"{name}: {writes}"
    sales = db[SALES].find_one({"_id": 7})
    assert (sales["units_sold"], sales["revenue_cents"], sales["version"]) == (3, 36000, 3)
    product = db[PRODUCTS].find_one({"_id": 7})
    assert (product["quantity"], product["version"], product["position"]) == (0, 3, batch[-1].position)
    assert_same_as_one_by_one([], batch)


def test_a_run_on_an_existing_document_is_one_version_checked_update():
    history = [product_created(7)]
    batch = [product_updated(7, 2, price="99.99"), stock_changed(7, 3, units_sold=1, revenue="99.99"),
             stock_changed(7, 4, units_sold=1, revenue="99.99")]
    db, _ = prepared(*history)
    assert project_batch(db, items(*batch)) == [APPLIED] * 3

    for name, writes in db.bulk_writes:
        (write,) = writes
        assert isinstance(write, UpdateOne)
        assert write._filter == {"_id": 7, "version": 1}, f"{name} is not checked against the run's predecessor"
    assert db.bulk_writes[0][1][0]._doc["$inc"] == {"units_sold": 2, "revenue_cents": 19998}
    assert_same_as_one_by_one(history, batch)


def test_runs_of_several_documents_and_collections_share_one_bulk_write_per_collection():
    history = [product_created(1), product_created(2), order_placed(5)]
    batch = [stock_changed(1, 2), order_placed(6), stock_changed(2, 2), order_cancelled(5, 2), stock_changed(1, 3),
             product_created(3)]
    db, _ = prepared(*history)
    assert project_batch(db, items(*batch)) == [APPLIED] * 6

    writes = {name: len(operations) for name, operations in db.bulk_writes}
    assert writes == {SALES: 3, PRODUCTS: 3, ORDERS: 2}
    assert len(db.bulk_writes) == 3
    assert_same_as_one_by_one(history, batch)


def test_each_landed_document_remembers_the_recent_batches_only():
    db, _ = prepared(product_created(7))
    for version in range(2, KEEP_BATCHES + 6):
        project_batch(db, items(stock_changed(7, version)))
    recent = db[PRODUCTS].find_one({"_id": 7})[BATCH_FIELD]
    assert len(recent) == KEEP_BATCHES
    assert len(set(recent)) == KEEP_BATCHES


# --- unclean runs go one by one ------------------------------------------------------------------


def test_the_same_event_twice_in_a_batch_takes_the_one_by_one_path():
    created = product_created(7)
    batch = [created, stock_changed(7, 2), created]
    db, _ = prepared()
    assert project_batch(db, items(*batch)) == [APPLIED, APPLIED, DUPLICATE]
    assert db.bulk_writes == []
    assert_same_as_one_by_one([], batch)


def test_a_hole_inside_the_batch_takes_the_one_by_one_path_and_the_late_event_is_a_gap():
    batch = [product_created(7), stock_changed(7, 3), product_created(8)]
    db, _ = prepared()
    assert project_batch(db, items(*batch)) == [APPLIED, GAP, APPLIED]
    assert db.bulk_writes == []
    assert_same_as_one_by_one([], batch)


def test_versions_out_of_order_in_a_batch_are_not_a_clean_run():
    batch = [product_created(7), stock_changed(7, 3), stock_changed(7, 2)]
    assert assert_same_as_one_by_one([], batch) == [APPLIED, GAP, APPLIED]


# --- runs that did not land fall back, event by event ---------------------------------------------


def test_a_redelivered_run_over_a_document_that_moved_on_is_sorted_out_one_by_one():
    history = [product_created(7), stock_changed(7, 2, units_sold=1, revenue="1.00")]
    redelivered = [history[1], stock_changed(7, 3, units_sold=1, revenue="1.00")]
    results = assert_same_as_one_by_one(history, redelivered)
    assert results == [DUPLICATE, APPLIED]


def test_a_redelivered_creation_is_a_duplicate_and_its_sale_counts_once():
    created, sale = product_created(7), stock_changed(7, 2, units_sold=1, revenue="1.00")
    results = assert_same_as_one_by_one([created, sale], [created, sale])
    assert results == [DUPLICATE, DUPLICATE]


def test_a_run_ahead_of_the_document_is_a_gap_for_each_of_its_events():
    history = [product_created(7)]
    batch = [stock_changed(7, 3), stock_changed(7, 4)]
    assert assert_same_as_one_by_one(history, batch) == [GAP, GAP]


def test_when_some_runs_land_and_others_do_not_each_event_gets_its_own_outcome():
    history = [product_created(7), product_created(8), stock_changed(8, 2)]
    # Product 7's run lands; product 8's is a redelivery (v2 already there) followed by v3;
    # order 5's run is new.
    batch = [stock_changed(7, 2, units_sold=3, revenue="3.00"), history[2], order_placed(5),
             stock_changed(8, 3), stock_changed(7, 3, units_sold=1, revenue="1.00")]
    db, reference = prepared(*history)
    results = project_batch(db, items(*batch))
    assert results == [APPLIED, DUPLICATE, APPLIED, APPLIED, APPLIED]
    assert results == one_by_one(reference, batch)
    assert contents(db) == contents(reference)
    # Product 7's sale went in with the bulk write and was not applied a second time.
    assert db[SALES].find_one({"_id": 7})["units_sold"] == 4


def test_a_failed_insert_in_the_bulk_write_does_not_stop_the_other_runs():
    created = product_created(7)
    history = [created]
    batch = [created, product_created(8), product_created(9)]
    db, _ = prepared(*history)
    assert project_batch(db, items(*batch)) == [DUPLICATE, APPLIED, APPLIED]
    assert {doc["_id"] for doc in db[PRODUCTS].find()} == {7, 8, 9}
    assert_same_as_one_by_one(history, batch)


# --- malformed events ----------------------------------------------------------------------------


def test_a_malformed_event_gets_its_error_and_the_rest_of_the_batch_applies():
    bad = event("product.updated", 9, 2, product_fields(price="twelve"))
    batch = [product_created(7), bad, product_created(8)]
    db, _ = prepared()
    results = project_batch(db, items(*batch))
    assert results[0] is APPLIED and results[2] is APPLIED
    assert isinstance(results[1], MalformedEvent)
    assert_same_as_one_by_one([], batch)


def test_a_malformed_event_inside_a_run_leaves_the_events_after_it_waiting_as_gaps():
    bad = event("product.stock_changed", 7, 2, {"quantity": 1})
    batch = [product_created(7), bad, stock_changed(7, 3)]
    results = assert_same_as_one_by_one([], batch)
    assert results[0] is APPLIED and isinstance(results[1], MalformedEvent) and results[2] is GAP


@pytest.mark.parametrize("size", [1, 2, 5])
def test_a_clean_run_of_any_length_applies_as_one_by_one_would(size):
    batch = [product_created(7)] + [stock_changed(7, v) for v in range(2, size + 1)]
    assert assert_same_as_one_by_one([], batch) == [APPLIED] * size
