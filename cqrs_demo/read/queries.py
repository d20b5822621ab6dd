"""Answers to queries, from the read model only. The write side's tables are never consulted.

The shape of each answer is in `views.py`.
"""

from __future__ import annotations

import re
from typing import Any

from cqrs_demo.errors import NotFound, ReadModelBehind
from cqrs_demo.messaging.product import cents
from cqrs_demo.messaging import partition_layout
from cqrs_demo.messaging.topology import MAX_PARTITIONS
from cqrs_demo.read import partition_status, projection
from cqrs_demo.read.partition_balance import live_members
from cqrs_demo.read.params import OrderListParams, ProductListParams
from cqrs_demo.read.views import order_view, product_view, projection_status_view, read_model_status_view, top_product_view
from cqrs_demo.read.waiting import VersionWatch
from cqrs_demo.read.generations import POINTER

# Sorting uses the plain `id` field every document carries beside `_id`: the same number, but
# some MongoDB-compatible servers order `_id` values as text (1, 10, 2), never a plain field.
_SORTS = {"id": "id", "name": "name", "price": "price_cents", "quantity": "quantity"}


def list_products(db, params: ProductListParams) -> tuple[list[dict[str, Any]], int]:
    query: dict[str, Any] = {"deleted": False}
    if params.q:
        query["name"] = {"$regex": re.escape(params.q), "$options": "i"}
    price: dict[str, int] = {}
    if params.min_price is not None:
        price["$gte"] = cents(params.min_price)
    if params.max_price is not None:
        price["$lte"] = cents(params.max_price)
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
    return [top_product_view(doc) for doc in docs]


def projection_status(db) -> dict[str, Any]:
    """The projector's status record, the watermark (`read.watermark`), the relay's report, and each
    partition of the namespace's recorded layout (`partition_layout`)."""
    wanted = ["projector", "watermark", "relay", *partition_status.record_ids(MAX_PARTITIONS)]
    docs = {doc["_id"]: doc for doc in db[projection.STATUS].find({"_id": {"$in": wanted}})}
    partitions = partition_status.partitions_view(db, partition_layout.recorded(db), live_members(db), records=docs)
    return projection_status_view(docs.get("projector", {}), docs.get("watermark", {}), docs.get("relay", {}),
                                  partitions)


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


def read_model_status(db) -> dict[str, Any]:
    """`projection_status`, and the read model's live generation with the rebuild under way or the
    last one (`read.generations`)."""
    pointer = db[projection.STATUS].find_one({"_id": POINTER}) or {}
    return read_model_status_view(projection_status(db), pointer)
