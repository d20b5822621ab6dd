"""Commands the write side accepts, validated with pydantic before anything touches the database.

Request bodies are parsed with decimals for JSON fractions (see `web.JsonProvider`), so a price
arrives here as `Decimal` or `int` and never passes through a binary float. A product's fields
are declared once, in the event contract (`messaging/product.py`); the patch is derived from them.
"""

from __future__ import annotations

from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from cqrs_demo.messaging.product import MAX_PRICE, MAX_QUANTITY, Name, ProductFields, Sku, integer

__all__ = ["MAX_PRICE", "MAX_QUANTITY", "OrderLine", "PlaceOrder", "ProductFields", "ProductPatch"]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class _Patch(_Command):
    """A partial update: any subset of the fields, at least one, none null."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "examples": [{"price": 99.99}]})

    @model_validator(mode="before")
    @classmethod
    def _no_nulls_and_not_empty(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError("a patch must name at least one field")
            for key, value in data.items():
                if value is None and key in cls.model_fields:
                    raise ValueError(f"{key} may not be null")
        return data

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


def _optional(declared: Any) -> Any:
    return (declared | None, Field(default=None, json_schema_extra=_given_means_not_null))


def _given_means_not_null(schema: dict[str, Any]) -> None:
    # None only marks a field as not given (a null is refused above), so the document says
    # "optional, and never null".
    schema.pop("default", None)
    [given] = [option for option in schema.pop("anyOf") if option.get("type") != "null"]
    schema.update(given)


ProductPatch = create_model(
    "ProductPatch",
    __base__=_Patch,
    __doc__="A partial update of a product (PATCH): any of its fields, at least one, none null.",
    **{
        name: _optional(declared)
        for name, declared in get_type_hints(ProductFields, include_extras=True).items()
        if name in ProductFields.model_fields
    },
)


MAX_ORDER_LINES = 50
ProductId = integer(1, 2**63 - 1)
Ordered = integer(1, MAX_QUANTITY)

# "Exactly one of sku and product_id, the other absent or null", as JSON Schema says it.
_ONE_PRODUCT = {
    "oneOf": [
        {"required": ["sku"], "properties": {"sku": {"type": "string"}}},
        {"required": ["product_id"], "properties": {"product_id": {"type": "integer"}}},
    ]
}


class OrderLine(_Command):
    """One line of an order: a product named by `sku` or by `product_id` (exactly one), and how many."""

    model_config = ConfigDict(json_schema_extra=_ONE_PRODUCT)

    sku: Sku | None = None
    product_id: ProductId | None = None
    quantity: Ordered

    @model_validator(mode="after")
    def _names_one_product(self) -> "OrderLine":
        if (self.sku is None) == (self.product_id is None):
            raise ValueError("name the product by exactly one of sku or product_id")
        return self


class PlaceOrder(_Command):
    """An order: all lines or none. Each product on one line only (combine the quantities)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"customer": "ada", "lines": [{"sku": "SKU-DEMO-0024", "quantity": 2}]}]}
    )

    customer: Name
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=MAX_ORDER_LINES)]

    @model_validator(mode="after")
    def _each_product_once(self) -> "PlaceOrder":
        seen: set = set()
        for line in self.lines:
            key = ("sku", line.sku) if line.sku is not None else ("id", line.product_id)
            if key in seen:
                raise ValueError(f"{key[0]} {key[1]!r} appears on more than one line; combine them")
            seen.add(key)
        return self
