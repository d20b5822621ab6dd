"""Does the read model say what the write model implies? The check behind `cqrs-demo check`.

It compares, record by record, PostgreSQL's products and orders, and the sales they imply,
with MongoDB's documents. Each difference is reported with its kind:
- `missing`: in PostgreSQL, not (or not yet) in the read model;
- `extra`: in the read model, gone from PostgreSQL (a delete not yet projected);
- `stale`: both there, the read model at an older version;
- `mismatch`: same version, different content. Never expected: that would be a bug.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from cqrs_demo.messaging import product
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.read import generations, projection
from cqrs_demo.write.schema import order_lines, orders, outbox, products

# What the read model must hold for each product: its fields, stored as the projector stores them.
_PRODUCT_FIELDS = [product.stored_name(name) for name in product.FIELDS]


def _write_products(conn) -> dict[int, dict[str, Any]]:
    return {
        row.id: {"version": row.version, **product.stored(product.payload(row._mapping))}
        for row in conn.execute(sa.select(products))
    }


def _write_orders(conn) -> dict[int, dict[str, Any]]:
    lines: dict[int, list] = defaultdict(list)
    for row in conn.execute(sa.select(order_lines).order_by(order_lines.c.order_id, order_lines.c.line_no)):
        lines[row.order_id].append(
            {
                "line_no": row.line_no,
                "product_id": row.product_id,
                "sku": row.sku,
                "name": row.name,
                "quantity": row.quantity,
                "unit_price_cents": product.cents(row.unit_price),
                "line_total_cents": product.cents(row.line_total),
            }
        )
    return {
        row.id: {
            "version": row.version,
            "customer": row.customer,
            "status": row.status,
            "total_cents": product.cents(row.total),
            "lines": lines[row.id],
        }
        for row in conn.execute(sa.select(orders))
    }


def _implied_sales(write_orders: dict[int, dict[str, Any]]) -> dict[int, dict[str, int]]:
    sales: dict[int, dict[str, int]] = defaultdict(lambda: {"units_sold": 0, "revenue_cents": 0})
    for order in write_orders.values():
        if order["status"] != "placed":
            continue
        for line in order["lines"]:
            sales[line["product_id"]]["units_sold"] += line["quantity"]
            sales[line["product_id"]]["revenue_cents"] += line["line_total_cents"]
    return sales


def _compare(kind: str, written: dict[int, dict], read: dict[int, dict], fields) -> list[dict]:
    differences = []
    for key, expected in written.items():
        actual = read.get(key)
        if actual is None:
            differences.append({"kind": "missing", "what": kind, "id": key, "version": expected.get("version")})
            continue
        if "version" in expected and actual.get("version", 0) < expected["version"]:
            differences.append(
                {"kind": "stale", "what": kind, "id": key, "write": expected["version"], "read": actual.get("version")}
            )
            continue
        wrong = {f: {"write": expected[f], "read": actual.get(f)} for f in fields if actual.get(f) != expected[f]}
        if wrong:
            differences.append({"kind": "mismatch", "what": kind, "id": key, "fields": wrong})
    for key in read.keys() - written.keys():
        differences.append({"kind": "extra", "what": kind, "id": key})
    return differences


def compare(engine, db) -> dict[str, Any]:
    db = generations.live(db)  # one generation throughout, even if a rebuild switches meanwhile
    with engine.connect() as conn:
        write_products = _write_products(conn)
        write_orders = _write_orders(conn)
        unpublished = conn.scalar(sa.select(sa.func.count()).where(outbox.c.published_at.is_(None)))
    read_products = {doc["_id"]: doc for doc in db[projection.PRODUCTS].find({"deleted": False})}
    read_orders = {doc["_id"]: doc for doc in db[projection.ORDERS].find()}
    read_sales = {
        doc["_id"]: doc
        for doc in db[projection.SALES].find()
        if doc.get("units_sold", 0) or doc.get("revenue_cents", 0)
    }
    implied = {pid: sale for pid, sale in _implied_sales(write_orders).items() if sale["units_sold"]}
    differences = (
        _compare("product", write_products, read_products, _PRODUCT_FIELDS)
        + _compare("order", write_orders, read_orders, ["customer", "status", "total_cents", "lines"])
        + _compare("sales", implied, read_sales, ["units_sold", "revenue_cents"])
    )
    return {
        "equal": not differences,
        "products": len(write_products),
        "orders": len(write_orders),
        "products_with_sales": len(implied),
        "unpublished_events": unpublished,
        "differences": differences[:50],
        "difference_count": len(differences),
    }


def wait_until_equal(engine, db, timeout: float) -> dict[str, Any]:
    """Compare until equal or `timeout` passes; the last comparison either way."""
    latest: dict[str, Any] = {}

    def equal() -> bool:
        latest.update(compare(engine, db))
        return latest["equal"]

    try:
        wait_until(equal, timeout, interval=0.1, what="the read model to equal the write model")
    except WaitTimeout:
        pass  # the caller reads the differences from the last comparison
    return latest
