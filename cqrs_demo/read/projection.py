"""Turning events into read documents: products, their sales, and orders.

Collections in the namespace's MongoDB database:
- `products`: the product's fields, its current stock, price as integer cents (exact, and
  comparable in range queries), `version`, the event's commit time and when it was projected.
  A deleted product stays as a tombstone (`deleted: true`) so that a late copy of an older
  event cannot bring it back.
- `sales_by_product`: units sold and revenue per product. It follows the product's own event
  stream (every product event advances its version), so it is exactly-once by the same rule.
- `orders`: one document per order with its lines embedded, as the query service serves it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pymongo import UpdateOne

from cqrs_demo.messaging import events, product
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.messaging.product import cents
from cqrs_demo.read import upcasting
from cqrs_demo.read.versioned import Outcome, apply_unchecked, apply_versioned

PRODUCTS = "products"
SALES = "sales_by_product"
ORDERS = "orders"
STATUS = "projection_status"


@dataclass(frozen=True)
class Change:
    """One version-checked write an event makes to one read document."""

    collection: str
    doc_id: Any
    version: int
    set: dict[str, Any]
    inc: dict[str, Any] = field(default_factory=dict)


def project(db, event: Event, trace: dict[str, Any] | None = None, dedup: bool = True) -> Outcome:
    """Apply one event to the read model; see `versioned` for why this is safe to repeat.

    `dedup=False` drops the version check, to demonstrate what it prevents; never the default.
    """
    apply = apply_versioned if dedup else apply_unchecked
    outcomes = [
        apply(db[c.collection], c.doc_id, c.version, c.set, c.inc or None)
        for c in changes(event, trace, unchecked=not dedup)
    ]
    return Outcome.combine(outcomes)


def changes(event: Event, trace: dict[str, Any] | None = None, unchecked: bool = False) -> list[Change]:
    """The writes an event makes, in the order they must be made; MalformedEvent if it cannot.

    The event is first upcast to the newest schema version (`upcasting`), the only one the code
    below reads; a version newer than that raises `UnknownSchemaVersion`, a `MalformedEvent`.
    """
    event = upcasting.upcast(event)
    meta = _meta(event, trace or {})
    try:
        if event.aggregate_type == "product":
            return _product_changes(event, meta, unchecked)
        if event.aggregate_type == "order":
            fields = {**_order_fields(event), **meta, "id": event.aggregate_id}
            return [Change(ORDERS, event.aggregate_id, event.aggregate_version, fields)]
    except (KeyError, TypeError, ArithmeticError, ValueError) as exc:
        raise MalformedEvent(f"payload of {event.type} does not fit the contract (v{event.schema_version}): {exc!r}") from None
    raise MalformedEvent(f"unknown aggregate type {event.aggregate_type!r}")


def _meta(event: Event, trace: dict[str, Any]) -> dict[str, Any]:
    projected_at = datetime.now(timezone.utc)
    committed_at = datetime.fromisoformat(event.committed_at)
    return {
        "position": event.position,
        "committed_at": committed_at,
        "projected_at": projected_at,
        "trace": {**trace, "event_id": event.event_id, "projected_at": projected_at},
    }


def _product_fields(payload: dict[str, Any]) -> dict[str, Any]:
    price = payload["price"]  # v2: {"amount": "12.50", "currency": "EUR"}
    if price["currency"] != events.CURRENCY:
        raise ValueError(f"price in {price['currency']!r}; the read model holds {events.CURRENCY} only")
    return {**product.stored({**payload, "price": price["amount"]}), "deleted": False}


def _product_changes(event: Event, meta: dict[str, Any], unchecked: bool) -> list[Change]:
    payload, version, pid = event.payload, event.aggregate_version, event.aggregate_id
    sales_inc: dict[str, int] = {}
    if event.type in (events.PRODUCT_CREATED, events.PRODUCT_UPDATED):
        fields = _product_fields(payload)
        sales_set = {"name": fields["name"], "sku": fields["sku"], "deleted": False}
    elif event.type == events.PRODUCT_DELETED:
        fields = {"deleted": True}
        sales_set = {"deleted": True}
    elif event.type == events.PRODUCT_STOCK_CHANGED:
        fields = {"quantity": int(payload["quantity"])}
        sales_set = {}
        sales_inc = {
            "units_sold": int(payload["units_sold_delta"]),
            "revenue_cents": cents(payload["revenue_delta"]),
        }
    else:
        raise MalformedEvent(f"{event.type} is not a product event")
    if version == 1 or unchecked:
        sales_inc = {"units_sold": 0, "revenue_cents": 0, **sales_inc}
    # Sales first: a reader who waited for the product's version then sees its sales too.
    return [
        Change(SALES, pid, version, {**sales_set, "id": pid, "position": event.position}, sales_inc),
        Change(PRODUCTS, pid, version, {**fields, **meta, "id": pid}),
    ]


def _order_fields(event: Event) -> dict[str, Any]:
    payload = event.payload
    if event.type == events.ORDER_PLACED:
        lines = [
            {
                "line_no": line["line_no"],
                "product_id": line["product_id"],
                "sku": line["sku"],
                "name": line["name"],
                "quantity": int(line["quantity"]),
                "unit_price_cents": cents(line["unit_price"]),
                "line_total_cents": cents(line["line_total"]),
            }
            for line in payload["lines"]
        ]
        return {
            "customer": payload["customer"],
            "status": payload["status"],
            "total_cents": cents(payload["total"]),
            "lines": lines,
            "placed_at": datetime.fromisoformat(payload["placed_at"]),
        }
    if event.type == events.ORDER_CANCELLED:
        return {"status": payload["status"], "cancelled_at": datetime.fromisoformat(payload["cancelled_at"])}
    raise MalformedEvent(f"{event.type} is not an order event")


COUNTERS = {
    Outcome.APPLIED: "applied",
    Outcome.DUPLICATE: "duplicates",
    Outcome.GAP: "gaps",
    Outcome.REAPPLIED: "reapplied",
    Outcome.OVERWROTE_NEWER: "overwrote_newer",
}


def read_collection(aggregate_type: str) -> str | None:
    """The collection whose documents carry the version of this kind of stream."""
    return {"product": PRODUCTS, "order": ORDERS}.get(aggregate_type)


def status_write(results: list[tuple[Event, Outcome]], lag_ms: float | None) -> UpdateOne | None:
    """The projector's status record (what it applied, skipped and how far behind it runs) after
    a batch, as one write to the status collection; None for no results."""
    if not results:
        return None
    counts: dict[str, int] = {}
    for _, outcome in results:
        counts[COUNTERS[outcome]] = counts.get(COUNTERS[outcome], 0) + 1
    update: dict[str, Any] = {"$inc": counts, "$set": {"updated_at": datetime.now(timezone.utc)}}
    progressed = [e.position for e, o in results if o is not Outcome.DUPLICATE and o is not Outcome.GAP]
    if progressed:
        update["$max"] = {"max_applied_position": max(progressed)}
        if lag_ms is not None:
            update["$set"]["last_lag_ms"] = round(lag_ms, 3)
    return UpdateOne({"_id": "projector"}, update, upsert=True)


def ensure_indexes(db) -> None:
    for collection in (PRODUCTS, ORDERS, SALES):
        db[collection].create_index("id")
    db[PRODUCTS].create_index("sku")
    db[ORDERS].create_index("customer")
    db[SALES].create_index("units_sold")
