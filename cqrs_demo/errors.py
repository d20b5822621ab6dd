"""Client mistakes as values: one type per mistake, each carrying its one HTTP status.

The write and read sides raise these; `web.install` turns any of them into the JSON body
`{"error": code, "message": text, ...details}`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.details}


class MalformedJson(ApiError):
    status, code = 400, "malformed_json"


class InvalidParameter(ApiError):
    status, code = 400, "invalid_parameter"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class PreconditionFailed(ApiError):
    status, code = 412, "version_mismatch"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    status, code = 422, "validation_failed"

    @classmethod
    def from_pydantic(cls, exc: ValidationError) -> "ValidationFailed":
        fields: dict[str, str] = {}
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]) or "body"
            message = error["msg"].removeprefix("Value error, ")
            fields.setdefault(where, message)
        summary = "; ".join(f"{name}: {message}" for name, message in fields.items())
        return cls(f"invalid request body: {summary}", fields=fields)


class ReadModelBehind(ApiError):
    status, code = 503, "read_model_behind"


class DuplicateSku(Conflict):
    code = "duplicate_sku"


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class ProductInOpenOrders(Conflict):
    code = "product_in_open_orders"
