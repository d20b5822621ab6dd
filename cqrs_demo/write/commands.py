"""Commands the write side accepts, validated with pydantic before anything touches the database.

Request bodies are parsed with decimals for JSON fractions (see `web.JsonProvider`), so a price
arrives here as `Decimal` or `int` and never passes through a binary float.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

MAX_QUANTITY = 2**31 - 1  # PostgreSQL integer
MAX_PRICE = Decimal("9999999999.99")  # NUMERIC(12, 2)


def _json_number_only(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("must be a JSON number")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("must be a finite number")
    return value


def _no_nul(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; refusing it here keeps it a client error, not a 500.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Money = Annotated[
    Decimal,
    BeforeValidator(_json_number_only),
    Field(ge=0, le=MAX_PRICE, decimal_places=2),
]
Stock = Annotated[StrictInt, Field(ge=0, le=MAX_QUANTITY)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_no_nul)
]
Description = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_no_nul)]
Sku = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_no_nul)
]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class ProductFields(_Command):
    """The seed's product body: used to create a product, and to replace one (PUT)."""

    name: Name
    description: Description = ""
    price: Money
    quantity: Stock
    sku: Sku


class ProductPatch(_Command):
    """A partial update (PATCH): any subset of the fields, at least one, none null."""

    name: Name | None = None
    description: Description | None = None
    price: Money | None = None
    quantity: Stock | None = None
    sku: Sku | None = None

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


MAX_ORDER_LINES = 50
ProductId = Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
Ordered = Annotated[StrictInt, Field(ge=1, le=MAX_QUANTITY)]


class OrderLine(_Command):
    """One line of an order: a product named by `sku` or by `product_id` (exactly one), and how many."""

    sku: Sku | None = None
    product_id: ProductId | None = None
    quantity: Ordered

    @model_validator(mode="after")
    def _names_one_product(self) -> "OrderLine":
        if (self.sku is None) == (self.product_id is None):
            raise ValueError("name the product by exactly one of sku or product_id")
        return self


class PlaceOrder(_Command):
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
