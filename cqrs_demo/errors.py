"""Client mistakes as values: one type per mistake, each carrying its one HTTP status.

The write and read sides raise these; `web.install` turns any of them into the JSON body
`{"error": code, "message": text, ...details}`. Each type also declares the details its body
carries (`details`) and any response header (`headers_model`), from which `body_model()` and the
OpenAPI documents describe exactly what a client receives.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

FieldMessages = dict[str, str]


class ErrorBody(BaseModel):
    """Every error answer: a code for programs, a message for people, and the details."""

    model_config = ConfigDict(extra="forbid")

    error: str
    message: str


class RetryAfter(BaseModel):
    """When to ask again: the read model may have caught up by then."""

    retry_after: int = Field(alias="Retry-After", ge=1, description="seconds to wait before retrying")


class ApiError(Exception):
    """A request the service refuses, and why."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    details: ClassVar[dict[str, Any]] = {}  # name -> type, or (type, default) when not always sent
    headers_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}

    def headers(self) -> dict[str, str]:
        return {}

    @classmethod
    @cache
    def body_model(cls) -> type[ErrorBody]:
        """The body of this error as a pydantic model: its code, a message, its details."""
        fields = {
            name: kind if isinstance(kind, tuple) else (kind, ...) for name, kind in cls.details.items()
        }
        return create_model(
            cls.__name__,
            __base__=ErrorBody,
            __doc__=cls.__doc__,
            error=(Literal[cls.code], ...),  # type: ignore[valid-type]
            **fields,
        )


class MalformedJson(ApiError):
    """The body is not valid JSON (or nests too deeply)."""

    status, code = 400, "malformed_json"


class InvalidParameter(ApiError):
    """A query parameter or header is unknown, repeated or invalid; `fields` names each one."""

    status, code = 400, "invalid_parameter"
    details = {"fields": FieldMessages}


class NotFound(ApiError):
    """No such resource, or no such product named on an order line."""

    status, code = 404, "not_found"
    details = {"id": (int, None), "sku": (str | None, None), "product_id": (int | None, None)}


class Conflict(ApiError):
    """The request conflicts with the current state of the resource."""

    status, code = 409, "conflict"


class PreconditionFailed(ApiError):
    """If-Match names no current version of the product (RFC 9110 §13.1.1); `current_version` is it."""

    status, code = 412, "version_mismatch"
    details = {"id": int, "current_version": int}


class PayloadTooLarge(ApiError):
    """The body is over 64 KiB."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    """The body is not sent as application/json."""

    status, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    """A field of the body is invalid; `fields` names each one."""

    status, code = 422, "validation_failed"
    details = {"fields": FieldMessages}

    @classmethod
    def from_pydantic(cls, exc: ValidationError) -> "ValidationFailed":
        fields: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "body"
            message = error["msg"].removeprefix("Value error, ")
            fields.setdefault(where, message)
        summary = "; ".join(f"{name}: {message}" for name, message in fields.items())
        return cls(f"invalid request body: {summary}", fields=fields)


class InvalidIdempotencyKey(ApiError):
    """The Idempotency-Key header is malformed, or sent more than once."""

    status, code = 400, "invalid_idempotency_key"
    details = {"parameter": str}


class MayRetryAfter(BaseModel):
    """When to retry, on the one 409 (of several) that a retry may cure by itself."""

    retry_after: int | None = Field(
        None, alias="Retry-After", ge=1,
        description="with idempotency_key_in_use: seconds to wait before retrying the same request")


class IdempotencyKeyInUse(ApiError):
    """A request with this Idempotency-Key is still being processed: retry once it has answered."""

    status, code = 409, "idempotency_key_in_use"
    details = {"parameter": str}
    headers_model = MayRetryAfter
    RETRY_AFTER_SECONDS = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.RETRY_AFTER_SECONDS)}


class IdempotencyKeyReused(ApiError):
    """This Idempotency-Key was used for a different request: a retry must repeat the first exactly."""

    status, code = 422, "idempotency_key_reused"
    details = {"parameter": str}


class ReadModelBehind(ApiError):
    """`min_version` was not reached within the wait: the read model is behind; retry later."""

    status, code = 503, "read_model_behind"
    details = {"id": int, "read_model_version": int, "min_version": int}
    headers_model = RetryAfter
    RETRY_AFTER_SECONDS = 1

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.RETRY_AFTER_SECONDS)}


class DuplicateSku(Conflict):
    """Another product already has this sku."""

    code = "duplicate_sku"
    details = {"sku": str}


class ShortLine(BaseModel):
    sku: str
    product_id: int
    requested: int
    available: int


class InsufficientStock(Conflict):
    """Not enough stock for some lines; `short` names each one. Nothing was taken."""

    code = "insufficient_stock"
    details = {"short": list[ShortLine]}


class OrderTotalTooLarge(Conflict):
    """At the products' current prices the order's total is over the largest amount an order can carry."""

    code = "order_total_too_large"


class ProductInOpenOrders(Conflict):
    """Placed orders still name the product: cancel them first; `orders` lists them."""

    code = "product_in_open_orders"
    details = {"id": int, "orders": list[int]}
