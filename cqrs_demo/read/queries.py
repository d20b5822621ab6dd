"""Answers to queries, from the read model only. The write side's tables are never consulted."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from cqrs_demo.errors import NotFound, ReadModelBehind
from cqrs_demo.read import projection
from cqrs_demo.read.params import OrderListParams, ProductListParams
from cqrs_demo.read.waiting import VersionWatch

# Sorting uses the plain `id` field every document carries beside `_id`: the same number, but
# some MongoDB-compatible servers order `_id` values as text (1, 10, 2), never a plain field.
_SORTS = {"id": "id", "name": "name", "price": "price_cents", "quantity": "quantity"}


def money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))


def instant(value: Any) -> str | None:
    """A stored timestamp as ISO 8601 in UTC, whether the store hands back a datetime or text.

    MongoDB returns datetimes; some wire-compatible servers return the text they stored, without
    an offset. Both mean UTC here, and clients always get the same format.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _projection_meta(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": doc["version"],
        "committed_at": instant(doc.get("committed_at")),
        "projected_at": instant(doc.get("projected_at")),
    }


def product_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        # .get: with deduplication switched off (a demonstration mode) a document can be partial.
        "id": doc["_id"],
        "name": doc.get("name", ""),
        "description": doc.get("description", ""),
        "price": money(doc.get("price_cents", 0)),
        "quantity": doc.get("quantity", 0),
        "sku": doc.get("sku", ""),
        **_projection_meta(doc),
    }


def order_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "customer": doc["customer"],
        "status": doc["status"],
        "total": money(doc["total_cents"]),
        "lines": [
            {
                "line_no": line["line_no"],
                "product_id": line["product_id"],
                "sku": line["sku"],
                "name": line["name"],
                "quantity": line["quantity"],
                "unit_price": money(line["unit_price_cents"]),
                "line_total": money(line["line_total_cents"]),
            }
            for line in doc["lines"]
        ],
        "placed_at": instant(doc.get("placed_at")),
        "cancelled_at": instant(doc.get("cancelled_at")),
        **_projection_meta(doc),
    }


def list_products(db, params: ProductListParams) -> tuple[list[dict[str, Any]], int]:
    query: dict[str, Any] = {"deleted": False}
    if params.q:
        query["name"] = {"$regex": re.escape(params.q), "$options": "i"}
    price: dict[str, int] = {}
    if params.min_price is not None:
        price["$gte"] = int(params.min_price * 100)
    if params.max_price is not None:
        price["$lte"] = int(params.max_price * 100)
    if price:
        query["price_cents"] = price
    if params.in_stock is not None:
        query["quantity"] = {"$gt": 0} if params.in_stock else {"$lte": 0}
    field = _SORTS[params.sort.lstrip("-")]
    direction = -1 if params.sort.startswith("-") else 1
    order = [(field, direction)] + ([("id", 1)] if field != "id" else [])
    collection = db[projection.PRODUCTS]
    docs = collection.find(query).sort(order).skip(params.offset).limit(params.limit)
    return [product_view(doc) for doc in docs], collection.count_documents(query)


def get_product(watch: VersionWatch, product_id: int, min_version: int | None, wait_seconds: float) -> dict[str, Any]:
    doc = _wait_for(watch, projection.PRODUCTS, product_id, min_version, wait_seconds, "product")
    if doc is None or doc.get("deleted"):
        raise NotFound(f"no product with id {product_id}", id=product_id)
    return product_view(doc)


def list_orders(db, params: OrderListParams) -> tuple[list[dict[str, Any]], int]:
    query: dict[str, Any] = {}
    if params.customer is not None:
        query["customer"] = params.customer
    if params.status is not None:
        query["status"] = params.status
    collection = db[projection.ORDERS]
    docs = collection.find(query).sort([("id", 1)]).skip(params.offset).limit(params.limit)
    return [order_view(doc) for doc in docs], collection.count_documents(query)


def get_order(watch: VersionWatch, order_id: int, min_version: int | None, wait_seconds: float) -> dict[str, Any]:
    doc = _wait_for(watch, projection.ORDERS, order_id, min_version, wait_seconds, "order")
    if doc is None:
        raise NotFound(f"no order with id {order_id}", id=order_id)
    return order_view(doc)


def top_products(db, limit: int) -> list[dict[str, Any]]:
    docs = db[projection.SALES].find({"units_sold": {"$gt": 0}}).sort([("units_sold", -1), ("id", 1)]).limit(limit)
    return [
        {
            "product_id": doc["_id"],
            "sku": doc.get("sku"),
            "name": doc.get("name"),
            "units_sold": doc["units_sold"],
            "revenue": money(doc["revenue_cents"]),
            "deleted": bool(doc.get("deleted", False)),
        }
        for doc in docs
    ]


def projection_status(db) -> dict[str, Any]:
    doc = db[projection.STATUS].find_one({"_id": "projector"}) or {}
    return {
        "applied": doc.get("applied", 0),
        "duplicates": doc.get("duplicates", 0),
        "gaps": doc.get("gaps", 0),
        "reapplied": doc.get("reapplied", 0),
        "overwrote_newer": doc.get("overwrote_newer", 0),
        "dead_lettered": doc.get("dead_lettered", 0),
        "parked": doc.get("parked", 0),
        "last_position": doc.get("last_position", 0),
        "last_lag_ms": doc.get("last_lag_ms"),
        "updated_at": instant(doc.get("updated_at")),
    }


def _wait_for(watch: VersionWatch, collection: str, doc_id: int, min_version: int | None,
              wait_seconds: float, kind: str):
    """The document once it reaches `min_version`, waiting at most `wait_seconds` for it.

    Read-your-writes for a client that just sent a command: it passes the version the command
    returned, and either gets that version (or newer) or a 503 that says how far behind we are.
    """
    if doc_id > 2**63 - 1:
        return None
    if min_version is None:
        return watch.db[collection].find_one({"_id": doc_id})
    doc = watch.wait(collection, doc_id, min_version, wait_seconds)
    version = doc["version"] if doc else 0
    if version >= min_version:
        return doc
    raise ReadModelBehind(
        f"the read model has {kind} {doc_id} at version {version}, not yet {min_version}; "
        f"waited {wait_seconds:g}s, retry later",
        id=doc_id,
        read_model_version=version,
        min_version=min_version,
    )
