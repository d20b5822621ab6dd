"""The command service's OpenAPI 3 document, written to match what the routes really do."""

from __future__ import annotations

from typing import Any

from cqrs_demo import openapi
from cqrs_demo.write.commands import MAX_PRICE, MAX_QUANTITY

_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
    "description": {"type": "string", "maxLength": 2000},
    "price": {"type": "number", "minimum": 0, "maximum": float(MAX_PRICE), "multipleOf": 0.01},
    "quantity": {"type": "integer", "minimum": 0, "maximum": MAX_QUANTITY},
    "sku": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S"},
}

PRODUCT_FIELDS = {
    "type": "object",
    "required": ["name", "price", "quantity", "sku"],
    "additionalProperties": False,
    "properties": _FIELDS,
}
PRODUCT_PATCH = {"type": "object", "minProperties": 1, "additionalProperties": False, "properties": _FIELDS}
PRODUCT = {
    "type": "object",
    "required": ["id", "name", "description", "price", "quantity", "sku", "version", "position"],
    "properties": {
        **_FIELDS,
        "id": {"type": "integer"},
        "version": {"type": "integer", "minimum": 1},
        "position": {"type": "integer", "description": "the event's position in the outbox"},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
DELETED = {
    "type": "object",
    "required": ["id", "deleted", "version", "position"],
    "properties": {
        "id": {"type": "integer"},
        "deleted": {"type": "boolean"},
        "version": {"type": "integer"},
        "position": {"type": "integer"},
    },
}

ORDER_LINE_COMMAND = {
    "type": "object",
    "required": ["quantity"],
    "additionalProperties": False,
    "description": "name the product by exactly one of sku or product_id",
    "properties": {
        "sku": _FIELDS["sku"],
        "product_id": {"type": "integer", "minimum": 1},
        "quantity": {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY},
    },
}
PLACE_ORDER = {
    "type": "object",
    "required": ["customer", "lines"],
    "additionalProperties": False,
    "properties": {
        "customer": _FIELDS["name"],
        "lines": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"$ref": "#/components/schemas/OrderLineCommand"}},
    },
}
ORDER = {
    "type": "object",
    "required": ["id", "customer", "status", "total", "version", "lines"],
    "properties": {
        "id": {"type": "integer"},
        "customer": {"type": "string"},
        "status": {"type": "string", "enum": ["placed", "cancelled"]},
        "total": {"type": "number"},
        "version": {"type": "integer"},
        "position": {"type": "integer", "nullable": True, "description": "null when cancelling changed nothing"},
        "lines": {"type": "array", "items": {"type": "object"}},
        "product_versions": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
}

_ID = {"name": "product_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "the product version the change is based on; 412 when it is no longer current",
    "schema": {"type": "string"},
}
_ETAG = {"ETag": {"description": "the product's new version, quoted", "schema": {"type": "string"}}}


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": ref}}}}


def _body_errors() -> dict[str, Any]:
    return {
        "400": openapi.error("malformed JSON, or a malformed If-Match header"),
        "413": openapi.error("body over 64 KiB"),
        "415": openapi.error("body is not application/json"),
        "422": openapi.error("a field is invalid; `fields` names each one"),
    }


def _change(summary: str, operation_id: str, body_ref: str | None) -> dict[str, Any]:
    responses = {
        "200": openapi.json_response(
            "changed", {"$ref": "#/components/schemas/Product"} if body_ref else DELETED, _ETAG if body_ref else None
        ),
        "400": openapi.error("malformed If-Match header"),
        "404": openapi.error("no product with this id"),
        "412": openapi.error("If-Match names a version that is no longer current"),
    }
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "parameters": [_ID, _IF_MATCH],
        "responses": responses,
    }
    if body_ref:
        operation["requestBody"] = _body(body_ref)
        responses.update(_body_errors())
        responses["409"] = openapi.error("another product already has this sku")
    elif operation_id == "deleteProduct":
        responses["409"] = openapi.error("product_in_open_orders: placed orders still reference it")
    return operation


def document() -> dict[str, Any]:
    paths = {
        "/api/products": {
            "post": {
                "summary": "Create a product",
                "operationId": "createProduct",
                "requestBody": _body("#/components/schemas/ProductFields"),
                "responses": {
                    "201": openapi.json_response("created", {"$ref": "#/components/schemas/Product"}, _ETAG),
                    **_body_errors(),
                    "409": openapi.error("another product already has this sku"),
                },
            }
        },
        "/api/products/{product_id}": {
            "put": _change("Replace a product", "replaceProduct", "#/components/schemas/ProductFields"),
            "patch": _change("Change some fields of a product", "patchProduct", "#/components/schemas/ProductPatch"),
            "delete": _change("Delete a product", "deleteProduct", None),
        },
        "/api/orders": {
            "post": {
                "summary": "Place an order: all lines or none, stock taken in the same transaction",
                "operationId": "placeOrder",
                "requestBody": _body("#/components/schemas/PlaceOrder"),
                "responses": {
                    "201": openapi.json_response("placed", {"$ref": "#/components/schemas/Order"}),
                    **_body_errors(),
                    "404": openapi.error("a line names a product that does not exist"),
                    "409": openapi.error("insufficient_stock: `short` names each line that cannot be filled"),
                },
            }
        },
        "/api/orders/{order_id}/cancel": {
            "post": {
                "summary": "Cancel an order and restock it; cancelling a cancelled order changes nothing",
                "operationId": "cancelOrder",
                "parameters": [{"name": "order_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}],
                "responses": {
                    "200": openapi.json_response("cancelled", {"$ref": "#/components/schemas/Order"}),
                    "404": openapi.error("no order with this id"),
                },
            }
        },
    }
    schemas = {
        "ProductFields": PRODUCT_FIELDS,
        "ProductPatch": PRODUCT_PATCH,
        "Product": PRODUCT,
        "OrderLineCommand": ORDER_LINE_COMMAND,
        "PlaceOrder": PLACE_ORDER,
        "Order": ORDER,
    }
    return openapi.document(
        "CQRS Workbench command service",
        "Writes products and orders to PostgreSQL and records every change as an event in the outbox.",
        paths,
        schemas,
    )
