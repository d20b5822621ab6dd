"""Command models and the event contract, without any I/O.

Bodies are given as `web.JsonProvider` parses them: JSON fractions arrive as `Decimal`.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.write.commands import MAX_PRICE, MAX_QUANTITY, ProductFields, ProductPatch

VALID = {"name": "Product A", "description": "Product Test", "price": 120, "quantity": 3, "sku": "SKU-DEMO-0024"}


def body(**changes) -> dict:
    return {**VALID, **changes}


def without(field: str) -> dict:
    return {name: value for name, value in VALID.items() if name != field}


def error_fields(model, data) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return {".".join(str(part) for part in error["loc"]) for error in caught.value.errors()}


# --- ProductFields ---------------------------------------------------------------------------


def test_valid_body():
    fields = ProductFields.model_validate(VALID)
    assert fields.model_dump().items() >= {**VALID, "price": Decimal("120")}.items()


def test_description_defaults_to_empty():
    assert ProductFields.model_validate(without("description")).description == ""


def test_name_and_sku_are_trimmed():
    fields = ProductFields.model_validate(body(name="  Product A ", sku=" SKU-1 "))
    assert fields.name == "Product A" and fields.sku == "SKU-1"


@pytest.mark.parametrize(
    "price", [0, Decimal("0.10"), Decimal("19.99"), Decimal("0.100"), Decimal("1E+2"), MAX_PRICE]
)
def test_valid_prices_keep_their_exact_value(price):
    assert ProductFields.model_validate(body(price=price)).price == Decimal(price)


@pytest.mark.parametrize("quantity", [0, 1, MAX_QUANTITY])
def test_valid_quantities(quantity):
    assert ProductFields.model_validate(body(quantity=quantity)).quantity == quantity


@pytest.mark.parametrize("sent, quantity", [(Decimal("3.0"), 3), (Decimal("3E+2"), 300), (Decimal("-0"), 0)])
def test_a_json_number_without_fraction_is_an_integer(sent, quantity):
    """JSON Schema's "integer", which the OpenAPI document promises: 3.0 is 3."""
    fields = ProductFields.model_validate(body(quantity=sent))
    assert fields.quantity == quantity and type(fields.quantity) is int


def test_a_huge_integral_number_is_refused_without_building_it():
    assert "quantity" in error_fields(ProductFields, body(quantity=Decimal("1E+999999999")))


def test_fields_are_frozen():
    fields = ProductFields.model_validate(VALID)
    with pytest.raises(ValidationError):
        fields.name = "other"


@pytest.mark.parametrize(
    "data, field",
    [
        (without("name"), "name"),
        (without("price"), "price"),
        (without("quantity"), "quantity"),
        (without("sku"), "sku"),
        (body(name=""), "name"),
        (body(name="   "), "name"),
        (body(name="n" * 101), "name"),
        (body(name="a\x00b"), "name"),
        (body(name=5), "name"),
        (body(description="d" * 2001), "description"),
        (body(description="\x00"), "description"),
        (body(price=-1), "price"),
        (body(price=Decimal("-0.01")), "price"),
        (body(price=Decimal("1.234")), "price"),
        (body(price=MAX_PRICE + Decimal("0.01")), "price"),
        (body(price="12.00"), "price"),
        (body(price=12.5), "price"),  # a binary float never reaches a price
        (body(price=True), "price"),
        (body(price=None), "price"),
        (body(price=Decimal("NaN")), "price"),
        (body(price=Decimal("Infinity")), "price"),
        (body(quantity=-1), "quantity"),
        (body(quantity=Decimal("1.5")), "quantity"),
        (body(quantity=True), "quantity"),
        (body(quantity="3"), "quantity"),
        (body(quantity=MAX_QUANTITY + 1), "quantity"),
        (body(sku=""), "sku"),
        (body(sku=" "), "sku"),
        (body(sku="s" * 65), "sku"),
        (body(sku="a\x00"), "sku"),
        (body(colour="red"), "colour"),
    ],
    ids=lambda value: None if isinstance(value, dict) else value,
)
def test_invalid_field_is_named(data, field):
    assert field in error_fields(ProductFields, data)


def test_nul_message_is_readable():
    with pytest.raises(ValidationError, match="must not contain NUL"):
        ProductFields.model_validate(body(name="a\x00b"))


def test_string_price_message_says_json_number():
    with pytest.raises(ValidationError, match="must be a JSON number"):
        ProductFields.model_validate(body(price="1.00"))


# --- ProductPatch ----------------------------------------------------------------------------


def test_patch_changes_are_only_the_given_fields():
    patch = ProductPatch.model_validate({"quantity": 4, "price": Decimal("0.10")})
    assert patch.changes() == {"quantity": 4, "price": Decimal("0.10")}


def test_patch_trims_like_create():
    assert ProductPatch.model_validate({"sku": " S "}).changes() == {"sku": "S"}


@pytest.mark.parametrize("data", [{}, {"name": None}, {"description": None}, {"quantity": 1, "sku": None}])
def test_empty_or_null_patch_is_refused(data):
    with pytest.raises(ValidationError):
        ProductPatch.model_validate(data)


@pytest.mark.parametrize(
    "data, field",
    [
        ({"name": ""}, "name"),
        ({"price": Decimal("1.001")}, "price"),
        ({"price": "1"}, "price"),
        ({"quantity": -1}, "quantity"),
        ({"quantity": True}, "quantity"),
        ({"sku": "s" * 65}, "sku"),
        ({"colour": "red"}, "colour"),
        ({"colour": None}, "colour"),
    ],
)
def test_invalid_patch_field_is_named(data, field):
    assert field in error_fields(ProductPatch, data)


# --- Event contract --------------------------------------------------------------------------


def event(**changes) -> Event:
    fields = dict(
        event_id="0b8f6f0c-5f43-4a3c-9c7e-0d2c1b7d2a11",
        type="product.created",
        aggregate_type="product",
        aggregate_id=7,
        aggregate_version=1,
        position=42,
        committed_at="2024-05-01T12:00:00.123456+00:00",
        payload={"name": "Product A", "description": "", "price": "120.00", "quantity": 3, "sku": "S"},
    )
    return Event(**{**fields, **changes})


def as_dict(**changes) -> dict:
    return {**json.loads(event().to_json()), **changes}


def encoded(data) -> bytes:
    return json.dumps(data).encode()


def test_event_round_trips_through_json():
    original = event()
    assert Event.from_json(original.to_json()) == original


def test_event_json_is_compact_and_keeps_money_a_string():
    data = json.loads(event().to_json())
    assert data["payload"]["price"] == "120.00"
    assert data["schema_version"] == 1
    assert b" " not in event(payload={}).to_json()


def test_routing_key_is_the_type():
    assert event(type="order.placed").routing_key == "order.placed"


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe", b"{", encoded([1, 2]), encoded("text"), b"null"])
def test_non_object_bodies_are_malformed(body):
    with pytest.raises(MalformedEvent):
        Event.from_json(body)


@pytest.mark.parametrize(
    "field", ["event_id", "type", "aggregate_type", "aggregate_id", "aggregate_version", "position", "committed_at", "payload"]
)
def test_missing_field_is_malformed(field):
    data = as_dict()
    del data[field]
    with pytest.raises(MalformedEvent, match=field):
        Event.from_json(encoded(data))


@pytest.mark.parametrize(
    "changes",
    [
        {"aggregate_id": "7"},
        {"aggregate_id": True},
        {"aggregate_version": 1.0},
        {"position": None},
        {"payload": []},
        {"event_id": 1},
        {"type": "product.exploded"},
        {"aggregate_version": 0},
        {"schema_version": 0},
        {"schema_version": "2"},
        {"schema_version": True},
    ],
    ids=str,
)
def test_wrong_field_is_malformed(changes):
    with pytest.raises(MalformedEvent):
        Event.from_json(encoded(as_dict(**changes)))


def test_a_newer_schema_version_is_parsed_and_kept_for_the_reader_to_judge():
    parsed = Event.from_json(encoded(as_dict(schema_version=7)))
    assert parsed.schema_version == 7
    assert json.loads(parsed.to_json())["schema_version"] == 7


def test_malformed_event_is_a_value_error():
    assert issubclass(MalformedEvent, ValueError)
