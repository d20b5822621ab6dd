"""The product's fields, declared once in messaging/product.py, and everything derived from them.

A new product field is one line in `ProductFields` and its column in write/schema.py; these
tests fail if the two disagree, or if a derived shape (patch, event, read document, views)
does not follow.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from cqrs_demo.messaging import product
from cqrs_demo.messaging.product import FIELDS, MAX_PRICE, NO_NUL, NOT_BLANK_NO_NUL, ProductFields
from cqrs_demo.read import views
from cqrs_demo.write import results
from cqrs_demo.write.commands import ProductPatch
from cqrs_demo.write.schema import products

ROW_ONLY = {"id", "version", "created_at", "updated_at"}
# Every field, defaults included, as a row (and a validated body) holds them.
A_PRODUCT = ProductFields(name="Mug", description="blue", price=Decimal("6.50"), quantity=4, sku="MUG-1").model_dump()


def test_the_table_has_a_column_for_each_field_and_nothing_else():
    assert set(products.c.keys()) == set(FIELDS) | ROW_ONLY


@pytest.mark.parametrize("name", FIELDS)
def test_each_column_holds_what_its_field_allows(name):
    column, field = products.c[name], ProductFields.model_fields[name]
    assert not column.nullable
    if field.annotation is str:
        assert isinstance(column.type, (sa.String, sa.Text))
        max_length = next(m.max_length for m in field.metadata if getattr(m, "max_length", None))
        assert column.type.length is None or column.type.length >= max_length
    elif field.annotation is Decimal:
        assert isinstance(column.type, sa.Numeric) and column.type.scale == 2
        assert len(str(MAX_PRICE).replace(".", "")) <= column.type.precision
    else:
        assert field.annotation is int and isinstance(column.type, (sa.Integer, sa.BigInteger))


def test_the_patch_has_every_field_and_each_optional():
    assert tuple(ProductPatch.model_fields) == FIELDS
    assert all(not f.is_required() for f in ProductPatch.model_fields.values())


def test_the_answers_carry_every_field():
    assert set(FIELDS) <= set(results.Product.model_fields)
    assert set(FIELDS) <= set(views.Product.model_fields)


def test_an_event_carries_money_as_text_and_the_read_model_stores_cents():
    event = product.payload({**A_PRODUCT, "id": 1, "version": 2})
    assert event == {**A_PRODUCT, "price": "6.50"}
    stored = product.stored(event)
    assert stored == {**{k: v for k, v in A_PRODUCT.items() if k != "price"}, "price_cents": 650}
    assert product.served(stored) == A_PRODUCT


@pytest.mark.parametrize("payload", [{}, {**product.payload(A_PRODUCT), "price": "six"}, {**product.payload(A_PRODUCT), "name": 5}])
def test_a_payload_that_carries_no_product_cannot_be_stored(payload):
    with pytest.raises((KeyError, ValueError, ArithmeticError)):
        product.stored(payload)


def test_an_event_recorded_before_a_field_with_a_default_existed_reads_as_the_default():
    recorded = {name: value for name, value in product.payload(A_PRODUCT).items() if name != "description"}
    assert product.stored(recorded)["description"] == ""


def test_a_partial_read_document_is_served_as_zero_and_empty():
    served = product.served({"name": "Mug"})
    assert served["name"] == "Mug" and served["description"] == "" and served["sku"] == ""
    assert served["price"] == Decimal("0.00") and served["quantity"] == 0
    assert set(served) == set(FIELDS)


# --- the views the query service builds match the models it documents ----------------------

NOW = datetime(2024, 6, 14, 12, 0, tzinfo=timezone.utc)


def test_a_product_view_is_what_the_document_says():
    doc = {"_id": 7, "version": 3, "committed_at": NOW, "projected_at": "2024-06-14T12:00:01", **product.stored(
        product.payload(A_PRODUCT))}
    views.Product.model_validate(views.product_view(doc))


def test_an_order_view_is_what_the_document_says():
    line = {"line_no": 1, "product_id": 7, "sku": "MUG-1", "name": "Mug", "quantity": 2,
            "unit_price_cents": 650, "line_total_cents": 1300}
    doc = {"_id": 3, "customer": "ada", "status": "placed", "total_cents": 1300, "lines": [line],
           "placed_at": NOW, "version": 1, "committed_at": NOW, "projected_at": NOW}
    views.Order.model_validate(views.order_view(doc))


def test_sales_and_status_views_are_what_the_document_says():
    views.TopProduct.model_validate(
        views.top_product_view({"_id": 7, "sku": "MUG-1", "name": "Mug", "units_sold": 2, "revenue_cents": 1300})
    )
    views.ProjectionStatus.model_validate(views.projection_status_view({}))
    views.ProjectionStatus.model_validate(views.projection_status_view({"applied": 4, "last_lag_ms": 1.5, "updated_at": NOW}))


# --- the documents' text patterns say what the validators do ---------------------------------

SPECIAL = ["\x00", " ", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1f", "\x85", "\xa0", "\u1680", "\u2000",
           "\u200a", "\u200b", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff", "a", "\U0001f600"]


@pytest.mark.parametrize("char", SPECIAL, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("around", ["{}", "a{}", "{}a", "{}{}"])
def test_the_name_pattern_accepts_exactly_the_names_the_validator_does(char, around):
    name = around.format(char, char)
    try:
        ProductFields.model_validate({**A_PRODUCT, "name": name})
        accepted = True
    except ValidationError:
        accepted = False
    assert bool(re.search(NOT_BLANK_NO_NUL, name)) == accepted


@pytest.mark.parametrize("char", SPECIAL, ids=lambda c: f"U+{ord(c):04X}")
def test_the_description_pattern_accepts_exactly_what_the_validator_does(char):
    try:
        ProductFields.model_validate({**A_PRODUCT, "description": f"a{char}"})
        accepted = True
    except ValidationError:
        accepted = False
    assert bool(re.search(NO_NUL, f"a{char}")) == accepted
