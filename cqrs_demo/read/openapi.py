"""The query service's OpenAPI 3 document, written to match what the routes really do."""

from __future__ import annotations

from typing import Any

from cqrs_demo import openapi

_MONEY = {"type": "number", "minimum": 0}
_TIMES = {
    "version": {"type": "integer", "minimum": 1},
    "committed_at": {"type": "string", "format": "date-time", "nullable": True},
    "projected_at": {"type": "string", "format": "date-time", "nullable": True},
}
PRODUCT = {
    "type": "object",
    "required": ["id", "name", "description", "price", "quantity", "sku", "version"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "price": _MONEY,
        "quantity": {"type": "integer"},
        "sku": {"type": "string"},
        **_TIMES,
    },
}
ORDER_LINE = {
    "type": "object",
    "required": ["line_no", "product_id", "sku", "name", "quantity", "unit_price", "line_total"],
    "properties": {
        "line_no": {"type": "integer"},
        "product_id": {"type": "integer"},
        "sku": {"type": "string"},
        "name": {"type": "string"},
        "quantity": {"type": "integer"},
        "unit_price": _MONEY,
        "line_total": _MONEY,
    },
}
ORDER = {
    "type": "object",
    "required": ["id", "customer", "status", "total", "lines", "version"],
    "properties": {
        "id": {"type": "integer"},
        "customer": {"type": "string"},
        "status": {"type": "string", "enum": ["placed", "cancelled"]},
        "total": _MONEY,
        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/OrderLine"}},
        "placed_at": {"type": "string", "format": "date-time", "nullable": True},
        "cancelled_at": {"type": "string", "format": "date-time", "nullable": True},
        **_TIMES,
    },
}
TOP_PRODUCT = {
    "type": "object",
    "required": ["product_id", "units_sold", "revenue"],
    "properties": {
        "product_id": {"type": "integer"},
        "sku": {"type": "string", "nullable": True},
        "name": {"type": "string", "nullable": True},
        "units_sold": {"type": "integer"},
        "revenue": _MONEY,
        "deleted": {"type": "boolean"},
    },
}
STATUS = {
    "type": "object",
    "required": ["applied", "duplicates", "gaps", "last_position"],
    "properties": {
        "applied": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "gaps": {"type": "integer"},
        "last_position": {"type": "integer"},
        "last_lag_ms": {"type": "number", "nullable": True},
        "updated_at": {"type": "string", "format": "date-time", "nullable": True},
    },
}


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
    _query("offset", {"type": "integer", "minimum": 0, "maximum": 10**9, "default": 0}),
]
_PAGE_HEADERS = {"X-Total-Count": {"description": "matches before paging", "schema": {"type": "integer"}}}
_MIN_VERSION = _query(
    "min_version",
    {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "wait (bounded, CQRS_READ_WAIT_SECONDS, default 2 s) until the read model has this version; "
    "503 read_model_behind when it has not caught up in time",
)
_BAD_PARAMS = openapi.error("an unknown, repeated or invalid query parameter; `fields` names each one")


def _list(summary: str, operation_id: str, params: list, item_ref: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": operation_id,
            "parameters": params,
            "responses": {
                "200": openapi.json_response(
                    "one page of results", {"type": "array", "items": {"$ref": item_ref}}, _PAGE_HEADERS
                ),
                "400": _BAD_PARAMS,
            },
        }
    }


def _one(summary: str, operation_id: str, id_name: str, ref: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": operation_id,
            "parameters": [
                {"name": id_name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}},
                _MIN_VERSION,
            ],
            "responses": {
                "200": openapi.json_response(
                    "the read model's document",
                    {"$ref": ref},
                    {"X-Read-Model-Version": {"description": "its version", "schema": {"type": "integer"}}},
                ),
                "400": _BAD_PARAMS,
                "404": openapi.error("no such document in the read model"),
                "503": openapi.error("read_model_behind: min_version not reached in time"),
            },
        }
    }


def document() -> dict[str, Any]:
    paths = {
        "/api/products": _list(
            "List products",
            "listProducts",
            _PAGING
            + [
                _query("q", {"type": "string", "maxLength": 100}, "name contains, case-insensitive"),
                _query("min_price", {"type": "number", "minimum": 0, "multipleOf": 0.01}),
                _query("max_price", {"type": "number", "minimum": 0, "multipleOf": 0.01}),
                _query("in_stock", {"type": "boolean"}),
                _query(
                    "sort",
                    {"type": "string", "enum": ["id", "-id", "name", "-name", "price", "-price", "quantity", "-quantity"]},
                ),
            ],
            "#/components/schemas/Product",
        ),
        "/api/products/{product_id}": _one("One product", "getProduct", "product_id", "#/components/schemas/Product"),
        "/api/orders": _list(
            "List orders",
            "listOrders",
            _PAGING
            + [
                _query("customer", {"type": "string", "maxLength": 100}),
                _query("status", {"type": "string", "enum": ["placed", "cancelled"]}),
            ],
            "#/components/schemas/Order",
        ),
        "/api/orders/{order_id}": _one("One order, lines embedded", "getOrder", "order_id", "#/components/schemas/Order"),
        "/api/stats/top-products": {
            "get": {
                "summary": "Best-selling products by units sold",
                "operationId": "topProducts",
                "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10})],
                "responses": {
                    "200": openapi.json_response(
                        "best sellers first", {"type": "array", "items": {"$ref": "#/components/schemas/TopProduct"}}
                    ),
                    "400": _BAD_PARAMS,
                },
            }
        },
        "/api/projection": {
            "get": {
                "summary": "The projector's status record",
                "operationId": "projectionStatus",
                "responses": {
                    "200": openapi.json_response("status", {"$ref": "#/components/schemas/ProjectionStatus"}),
                    "400": _BAD_PARAMS,
                },
            }
        },
    }
    schemas = {
        "Product": PRODUCT,
        "Order": ORDER,
        "OrderLine": ORDER_LINE,
        "TopProduct": TOP_PRODUCT,
        "ProjectionStatus": STATUS,
    }
    return openapi.document(
        "CQRS Workbench query service",
        "Serves products, orders and sales from the MongoDB read model that the projector keeps.",
        paths,
        schemas,
    )
