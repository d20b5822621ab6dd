"""What the command service answers: each command's result, and the headers that go with it.

These models describe the JSON the handlers in `products.py` and `orders.py` return (the
document is generated from them, and the fuzzer in tests/property checks every answer against
it); answers are not validated again on their way out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from cqrs_demo.etags import ETAG_PATTERN
from cqrs_demo.messaging.product import Money, ProductFields
from cqrs_demo.web import Id

Version = Annotated[int, Field(ge=1, description="the version after this change")]
Position = Annotated[int, Field(ge=1, description="the event's position in the outbox")]


class Product(ProductFields):
    """A product as the change left it."""

    model_config = ConfigDict(json_schema_extra=None)  # the body's example is not an answer

    # Cancelling an order restocks it, which can take stock past what a client may set.
    quantity: Annotated[int, Field(ge=0)]
    id: Id
    version: Version
    position: Position
    created_at: datetime
    updated_at: datetime


class DeletedProduct(BaseModel):
    """A deleted product: its deletion is one more version, so the read side can order it."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    deleted: Literal[True]
    version: Version
    position: Position


class OrderedLine(BaseModel):
    """A line as ordered: the product's sku, name and price as they were then."""

    model_config = ConfigDict(extra="forbid")

    line_no: Annotated[int, Field(ge=1)]
    product_id: Id
    sku: str
    name: str
    quantity: Annotated[int, Field(ge=1)]
    unit_price: Money
    line_total: Money


class Order(BaseModel):
    """An order as placing or cancelling it left it."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    customer: str
    status: Literal["placed", "cancelled"]
    total: Money
    version: Version
    position: Position | None = Field(description="null when cancelling changed nothing")
    lines: list[OrderedLine]
    product_versions: dict[str, int] = Field(description="each product's version after its stock changed")
    created_at: datetime
    updated_at: datetime


class Replayed(BaseModel):
    """What an answer to a request with an Idempotency-Key may add (see `idempotency`)."""

    idempotent_replayed: Literal["true"] | None = Field(
        None, alias="Idempotent-Replayed",
        description="`true` when this is the stored answer to an earlier request with the same Idempotency-Key")


class ProductHeaders(BaseModel):
    etag: str = Field(alias="ETag", pattern=ETAG_PATTERN, description="the product's new version: send it in If-Match")


class CreatedProductHeaders(ProductHeaders, Replayed):
    location: str = Field(alias="Location", description="where the product's changes go")


class CreatedOrderHeaders(Replayed):
    location: str = Field(alias="Location", description="the order's address")
