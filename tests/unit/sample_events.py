"""Events shaped as the write side records them, for the read side's unit tests.

Each builder takes the stream's id and version and gives a valid event of that type; keyword
arguments replace payload fields, so a test names only what it is about. Positions grow with
each event built, as the outbox's do.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from cqrs_demo.messaging import events
from cqrs_demo.messaging.events import Event

COMMITTED_AT = "2024-05-01T12:00:00.123456+00:00"
_positions = itertools.count(1)


def event(type: str, aggregate_id: int, version: int, payload: dict[str, Any], **fields: Any) -> Event:
    aggregate_type = type.split(".", 1)[0]
    defaults = dict(
        event_id=str(uuid.uuid4()), type=type, aggregate_type=aggregate_type, aggregate_id=aggregate_id,
        aggregate_version=version, position=next(_positions), committed_at=COMMITTED_AT, payload=payload,
    )
    return Event(**{**defaults, **fields})


def product_fields(**changes: Any) -> dict[str, Any]:
    return {"name": "Product A", "description": "Product Test", "price": "120.00", "quantity": 3,
            "sku": "SKU-DEMO-0024", **changes}


def product_created(pid: int = 1, **changes: Any) -> Event:
    return event(events.PRODUCT_CREATED, pid, 1, product_fields(**changes))


def product_updated(pid: int, version: int, **changes: Any) -> Event:
    return event(events.PRODUCT_UPDATED, pid, version, product_fields(**changes))


def product_deleted(pid: int, version: int) -> Event:
    return event(events.PRODUCT_DELETED, pid, version, {"sku": "SKU-DEMO-0024", "name": "Product A"})


def stock_changed(pid: int, version: int, quantity: int = 1, units_sold: int = 2, revenue: str = "240.00",
                  order_id: int = 1) -> Event:
    return event(events.PRODUCT_STOCK_CHANGED, pid, version, {
        "quantity": quantity, "delta": -units_sold, "reason": events.ORDER_PLACED, "order_id": order_id,
        "units_sold_delta": units_sold, "revenue_delta": revenue,
    })


def order_line(line_no: int = 1, **changes: Any) -> dict[str, Any]:
    return {"line_no": line_no, "product_id": 1, "sku": "SKU-DEMO-0024", "name": "Product A", "quantity": 2,
            "unit_price": "120.00", "line_total": "240.00", **changes}


def order_placed(oid: int = 1, lines: list[dict[str, Any]] | None = None, **changes: Any) -> Event:
    lines = [order_line()] if lines is None else lines
    return event(events.ORDER_PLACED, oid, 1, {
        "customer": "ada", "status": "placed", "total": "240.00", "placed_at": "2024-05-01T12:00:00+00:00",
        "lines": lines, **changes,
    })


def order_cancelled(oid: int, version: int = 2) -> Event:
    return event(events.ORDER_CANCELLED, oid, version,
                 {"status": "cancelled", "cancelled_at": "2024-05-01T13:00:00+00:00"})
