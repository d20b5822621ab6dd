"""Query-string parameters, validated and typed before a query is built from them.

Nothing from the request reaches MongoDB except through these fields: numbers become numbers,
text becomes an escaped regular expression or an exact string, and a sort is one of a fixed set.
Unknown or repeated parameters are refused, so a typo is an error rather than a silent no-op.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.datastructures import MultiDict

from cqrs_demo.errors import InvalidParameter
from cqrs_demo.messaging.product import CENT, MAX_PRICE, JsonNumber, text

MAX_VERSION = 2**31 - 1
Limit = Annotated[int, Field(ge=1, le=1000)]
Offset = Annotated[int, Field(ge=0, le=10**9)]
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, multiple_of=CENT, allow_inf_nan=False), JsonNumber()]
Text = text(100)  # no NUL: MongoDB refuses one inside a regular expression


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(_Params):
    """For endpoints that take no query parameters: any given is an error."""


class ProductListParams(_Params):
    limit: Limit = 100
    offset: Offset = 0
    q: Text | None = Field(None, description="name contains, case-insensitive")
    min_price: Price | None = None
    max_price: Price | None = None
    in_stock: bool | None = None
    sort: Literal["id", "-id", "name", "-name", "price", "-price", "quantity", "-quantity"] = "id"


class ReadYourWrites(_Params):
    min_version: Annotated[int, Field(ge=1, le=MAX_VERSION)] | None = Field(
        None,
        description="wait (bounded, CQRS_READ_WAIT_SECONDS) until the read model has this version; "
        "503 read_model_behind, with Retry-After, when it has not caught up in time",
    )


class OrderListParams(_Params):
    limit: Limit = 100
    offset: Offset = 0
    customer: Text | None = None
    status: Literal["placed", "cancelled"] | None = None


class TopProductsParams(_Params):
    limit: Annotated[int, Field(ge=1, le=100)] = 10


def parse(model: type[_Params], args: MultiDict) -> _Params:
    repeated = [name for name in args if len(args.getlist(name)) > 1]
    if repeated:
        raise InvalidParameter(
            f"query parameter {repeated[0]!r} given more than once", fields={repeated[0]: "given more than once"}
        )
    try:
        return model.model_validate(args.to_dict())
    except ValidationError as exc:
        fields = {}
        for error in exc.errors(include_url=False, include_input=False):
            name = ".".join(str(part) for part in error["loc"]) or "query"
            message = "unknown query parameter" if error["type"] == "extra_forbidden" else error["msg"]
            fields.setdefault(name, message)
        summary = "; ".join(f"{name}: {message}" for name, message in fields.items())
        raise InvalidParameter(f"invalid query parameters: {summary}", fields=fields) from None
