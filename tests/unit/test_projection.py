"""Turning events into read-model writes (`read/projection.py`), for every event type."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cqrs_demo.messaging import events
from cqrs_demo.messaging.events import MalformedEvent
from cqrs_demo.read import projection
from cqrs_demo.read.projection import ORDERS, PRODUCTS, SALES, cents, changes
from cqrs_demo.read.versioned import Outcome
from mongo_double import FakeDatabase
from sample_events import (
    event,
    order_cancelled,
    order_line,
    order_placed,
    product_created,
    product_deleted,
    product_fields,
    product_updated,
    stock_changed,
)

META = {"position", "committed_at", "projected_at", "trace"}


def by_collection(event_changes) -> dict:
    return {change.collection: change for change in event_changes}


def without_meta(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if name not in META}


# --- products ------------------------------------------------------------------------------------


def test_product_created_writes_its_sales_record_first_then_the_product():
    created = product_created(7)
    sales, product = changes(created)
    assert (sales.collection, product.collection) == (SALES, PRODUCTS)
    assert {sales.doc_id, product.doc_id} == {7} and {sales.version, product.version} == {1}
    assert without_meta(product.set) == {
        "id": 7, "name": "Product A", "description": "Product Test", "price_cents": 12000, "quantity": 3,
        "sku": "SKU-DEMO-0024", "deleted": False,
    }
    assert product.inc == {}
    assert sales.set == {"id": 7, "name": "Product A", "sku": "SKU-DEMO-0024", "deleted": False,
                         "position": created.position}
    assert sales.inc == {"units_sold": 0, "revenue_cents": 0}  # the counters start at zero


def test_product_updated_replaces_the_fields_and_leaves_the_sales_counters_alone():
    updated = product_updated(7, 4, name="Renamed", price="99.99", quantity=0, sku="SKU-2")
    by = by_collection(changes(updated))
    assert without_meta(by[PRODUCTS].set) == {
        "id": 7, "name": "Renamed", "description": "Product Test", "price_cents": 9999, "quantity": 0,
        "sku": "SKU-2", "deleted": False,
    }
    assert by[SALES].set == {"id": 7, "name": "Renamed", "sku": "SKU-2", "deleted": False, "position": updated.position}
    assert by[SALES].inc == {}
    assert {change.version for change in by.values()} == {4}


def test_product_deleted_marks_both_documents_as_tombstones():
    deleted = product_deleted(7, 5)
    by = by_collection(changes(deleted))
    assert without_meta(by[PRODUCTS].set) == {"id": 7, "deleted": True}
    assert by[SALES].set == {"id": 7, "deleted": True, "position": deleted.position}
    assert {change.version for change in by.values()} == {5}


def test_stock_changed_sets_the_stock_and_increments_the_sales():
    sale = stock_changed(7, 2, quantity=1, units_sold=2, revenue="240.00")
    by = by_collection(changes(sale))
    assert without_meta(by[PRODUCTS].set) == {"id": 7, "quantity": 1}
    assert by[SALES].inc == {"units_sold": 2, "revenue_cents": 24000}
    assert by[SALES].set == {"id": 7, "position": sale.position}


def test_a_cancellation_restocks_and_takes_the_sale_back():
    restock = stock_changed(7, 3, quantity=3, units_sold=-2, revenue="-240.00")
    assert by_collection(changes(restock))[SALES].inc == {"units_sold": -2, "revenue_cents": -24000}


def test_without_the_version_check_every_sales_write_carries_the_counters():
    # Unchecked writes upsert: a sales document first created by a later event still starts at zero.
    updated = by_collection(changes(product_updated(7, 3), unchecked=True))
    assert updated[SALES].inc == {"units_sold": 0, "revenue_cents": 0}
    sale = by_collection(changes(stock_changed(7, 4, units_sold=1, revenue="0.10"), unchecked=True))
    assert sale[SALES].inc == {"units_sold": 1, "revenue_cents": 10}


def test_every_product_document_records_when_and_how_it_was_projected():
    created = product_created(7)
    product = by_collection(changes(created, {"delivered_at": "then"}))[PRODUCTS]
    assert product.set["position"] == created.position
    assert product.set["committed_at"] == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert product.set["projected_at"].tzinfo is not None
    assert product.set["trace"] == {"delivered_at": "then", "event_id": created.event_id,
                                    "projected_at": product.set["projected_at"]}


# --- orders --------------------------------------------------------------------------------------


def test_order_placed_is_one_order_document_with_its_lines_in_cents():
    placed = order_placed(3, lines=[order_line(1), order_line(2, product_id=2, sku="S2", name="B", quantity=1,
                                                       unit_price="0.10", line_total="0.10")], total="240.10")
    (change,) = changes(placed)
    assert (change.collection, change.doc_id, change.version) == (ORDERS, 3, 1)
    assert without_meta(change.set) == {
        "id": 3, "customer": "ada", "status": "placed", "total_cents": 24010,
        "placed_at": datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc),
        "lines": [
            {"line_no": 1, "product_id": 1, "sku": "SKU-DEMO-0024", "name": "Product A", "quantity": 2,
             "unit_price_cents": 12000, "line_total_cents": 24000},
            {"line_no": 2, "product_id": 2, "sku": "S2", "name": "B", "quantity": 1,
             "unit_price_cents": 10, "line_total_cents": 10},
        ],
    }
    assert change.inc == {}


def test_order_cancelled_changes_the_status_only():
    (change,) = changes(order_cancelled(3, version=2))
    assert (change.collection, change.doc_id, change.version) == (ORDERS, 3, 2)
    assert without_meta(change.set) == {
        "id": 3, "status": "cancelled", "cancelled_at": datetime(2024, 5, 1, 13, 0, tzinfo=timezone.utc),
    }


# --- money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount, expected",
    [("0.00", 0), ("0.01", 1), ("0.10", 10), ("19.99", 1999), ("120", 12000), ("120.00", 12000),
     ("-240.00", -24000), ("9999999999.99", 999999999999), ("0.29", 29), ("1.15", 115)],
)
def test_money_becomes_integer_cents_exactly(amount, expected):
    # 0.29 and 1.15 are the classic amounts a binary float gets wrong (28.999..., 114.999...).
    assert cents(amount) == expected
    assert type(cents(amount)) is int


@pytest.mark.parametrize("amount", ["1.005", "0.001", "19.999"])
def test_money_finer_than_a_cent_is_refused_rather_than_rounded(amount):
    with pytest.raises(ArithmeticError):
        cents(amount)
    with pytest.raises(MalformedEvent, match="product.created"):
        changes(product_created(7, price=amount))


# --- malformed events ----------------------------------------------------------------------------


def _without(fields: dict, name: str) -> dict:
    return {key: value for key, value in fields.items() if key != name}


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(event(events.PRODUCT_CREATED, 7, 1, _without(product_fields(), "name")), id="created without name"),
        pytest.param(event(events.PRODUCT_CREATED, 7, 1, product_fields(price="12,00")), id="price not a number"),
        pytest.param(event(events.PRODUCT_CREATED, 7, 1, product_fields(price=None)), id="price null"),
        pytest.param(event(events.PRODUCT_CREATED, 7, 1, product_fields(price="NaN")), id="price NaN"),
        pytest.param(event(events.PRODUCT_CREATED, 7, 1, product_fields(price="Infinity")), id="price infinite"),
        pytest.param(event(events.PRODUCT_UPDATED, 7, 2, product_fields(quantity="three")), id="quantity not a number"),
        pytest.param(event(events.PRODUCT_STOCK_CHANGED, 7, 2, {"quantity": 1}), id="stock change without sale"),
        pytest.param(event(events.PRODUCT_STOCK_CHANGED, 7, 2, {"quantity": 1, "units_sold_delta": 1,
                                                                "revenue_delta": "lots"}), id="revenue not a number"),
        pytest.param(order_placed(3, lines="none"), id="lines not a list"),
        pytest.param(order_placed(3, lines=[_without(order_line(), "unit_price")]), id="line without price"),
        pytest.param(order_placed(3, placed_at="last tuesday"), id="placed_at not a date"),
        pytest.param(event(events.ORDER_CANCELLED, 3, 2, {"status": "cancelled"}), id="cancelled without time"),
        pytest.param(event(events.ORDER_PLACED, 3, 1, {}, aggregate_type="product"), id="order event on a product"),
        pytest.param(event(events.PRODUCT_CREATED, 3, 1, product_fields(), aggregate_type="order"),
                     id="product event on an order"),
        pytest.param(event(events.PRODUCT_CREATED, 3, 1, product_fields(), aggregate_type="customer"),
                     id="unknown aggregate"),
    ],
)
def test_a_payload_that_does_not_fit_the_contract_is_a_malformed_event(bad):
    with pytest.raises(MalformedEvent):
        changes(bad)


def test_a_malformed_event_says_which_event_type_did_not_fit():
    with pytest.raises(MalformedEvent, match=r"payload of product\.created does not fit the contract.*'name'"):
        changes(event(events.PRODUCT_CREATED, 7, 1, _without(product_fields(), "name")))


# --- project: the changes applied through the version check --------------------------------------


def test_project_applies_a_products_stream_and_its_sales():
    db = FakeDatabase()
    stream = [product_created(7), stock_changed(7, 2, quantity=1, units_sold=2, revenue="240.00"),
              stock_changed(7, 3, quantity=0, units_sold=1, revenue="120.00"), product_updated(7, 4, price="99.99",
                                                                                              quantity=0)]
    assert [projection.project(db, e) for e in stream] == [Outcome.APPLIED] * 4
    sales = db[SALES].find_one({"_id": 7})
    assert (sales["units_sold"], sales["revenue_cents"], sales["version"]) == (3, 36000, 4)
    product = db[PRODUCTS].find_one({"_id": 7})
    assert (product["price_cents"], product["quantity"], product["version"]) == (9999, 0, 4)


def test_project_a_redelivered_sale_is_a_duplicate_and_counts_once():
    db = FakeDatabase()
    sale = stock_changed(7, 2, units_sold=2, revenue="240.00")
    projection.project(db, product_created(7))
    assert projection.project(db, sale) is Outcome.APPLIED
    assert projection.project(db, sale) is Outcome.DUPLICATE
    assert db[SALES].find_one({"_id": 7})["units_sold"] == 2


def test_project_without_dedup_counts_a_redelivered_sale_twice():
    db = FakeDatabase()
    sale = stock_changed(7, 2, units_sold=2, revenue="240.00")
    projection.project(db, product_created(7), dedup=False)
    projection.project(db, sale, dedup=False)
    assert projection.project(db, sale, dedup=False) is Outcome.REAPPLIED
    assert db[SALES].find_one({"_id": 7})["units_sold"] == 4


def test_a_deleted_product_stays_as_a_tombstone_that_an_old_event_cannot_revive():
    db = FakeDatabase()
    projection.project(db, product_created(7))
    projection.project(db, product_deleted(7, 2))
    assert projection.project(db, product_updated(7, 2, name="Back")) is Outcome.DUPLICATE
    product = db[PRODUCTS].find_one({"_id": 7})
    assert product["deleted"] is True and product["name"] == "Product A"


# --- the status record ---------------------------------------------------------------------------


def _record_status(db, results, lag_ms):
    db[projection.STATUS].bulk_write([projection.status_write(results, lag_ms)])


def test_status_counts_outcomes_and_keeps_the_highest_position_that_progressed():
    db = FakeDatabase()
    first, second, third = product_created(1), product_created(2), product_created(3)
    _record_status(db, [(second, Outcome.APPLIED), (first, Outcome.APPLIED)], lag_ms=12.3456)
    _record_status(db, [(third, Outcome.DUPLICATE), (first, Outcome.GAP)], lag_ms=99.0)
    status = db[projection.STATUS].find_one({"_id": "projector"})
    assert (status["applied"], status["duplicates"], status["gaps"]) == (2, 1, 1)
    # Duplicates and gaps made no progress: neither the position nor the lag moves for them.
    assert status["max_applied_position"] == second.position
    assert status["last_lag_ms"] == 12.346


def test_status_never_moves_its_position_backwards():
    db = FakeDatabase()
    older, newer = product_created(1), product_created(2)
    _record_status(db, [(newer, Outcome.APPLIED)], None)
    _record_status(db, [(older, Outcome.APPLIED)], None)
    assert db[projection.STATUS].find_one({"_id": "projector"})["max_applied_position"] == newer.position
