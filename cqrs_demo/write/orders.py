"""Order commands: placing an order takes stock, cancelling it gives the stock back.

The invariant is that stock never goes below zero, under any interleaving of orders. Placing
an order locks every product it names (in id order, so two orders cannot deadlock), checks all
lines, and only then takes the stock: an order is all or nothing. A racing order for the last
unit waits for the lock, then sees the stock is gone. The table's CHECK constraint backs this up.

Events: each stock change is its own `product.stock_changed` event on the product's stream (the
next product version), carrying the new quantity and the sale's units and revenue. The read
side's per-product ordering and idempotency therefore cover stock and sales with no extra rule.
The order itself has its own stream: `order.placed` (version 1), `order.cancelled` (version 2).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from cqrs_demo.errors import InsufficientStock, NotFound, OrderTotalTooLarge, ValidationFailed
from cqrs_demo.messaging import events
from cqrs_demo.messaging.product import money_text as _money
from cqrs_demo.write.commands import MAX_PRICE, PlaceOrder
from cqrs_demo.write.products import MAX_ID
from cqrs_demo.write.products import AGGREGATE as PRODUCT
from cqrs_demo.write.schema import order_lines, orders, products
from cqrs_demo.write.transaction import CommandTransaction

AGGREGATE = "order"
PLACED, CANCELLED = "placed", "cancelled"


def _lock_products(tx: CommandTransaction, command: PlaceOrder) -> dict[int, Any]:
    skus = [line.sku for line in command.lines if line.sku is not None]
    ids = [line.product_id for line in command.lines if line.product_id is not None]
    rows = tx.conn.execute(
        sa.select(products)
        .where(sa.or_(products.c.sku.in_(skus), products.c.id.in_(ids)))
        .order_by(products.c.id)
        .with_for_update()
    ).all()
    return {row.id: row for row in rows}


def _resolve(command: PlaceOrder, locked: dict[int, Any]) -> list[tuple[Any, int]]:
    """Each line's locked product row and quantity; 404 for a product that does not exist."""
    by_sku = {row.sku: row for row in locked.values()}
    resolved, seen = [], set()
    for line in command.lines:
        row = by_sku.get(line.sku) if line.sku is not None else locked.get(line.product_id)
        if row is None:
            named = f"sku {line.sku!r}" if line.sku is not None else f"id {line.product_id}"
            raise NotFound(f"no product with {named}", sku=line.sku, product_id=line.product_id)
        if row.id in seen:
            raise ValidationFailed(
                f"product {row.id} ({row.sku}) appears on more than one line; combine them",
                fields={"lines": f"product {row.id} appears on more than one line"},
            )
        seen.add(row.id)
        resolved.append((row, line.quantity))
    return resolved


def _change_stock(
    tx: CommandTransaction, row, delta: int, order_id: int, reason: str, units_sold: int, revenue: Decimal
) -> int:
    updated = tx.conn.execute(
        products.update()
        .where(products.c.id == row.id)
        .values(quantity=products.c.quantity + delta, version=products.c.version + 1, updated_at=sa.func.now())
        .returning(products.c.quantity, products.c.version)
    ).one()
    tx.record(
        events.PRODUCT_STOCK_CHANGED,
        PRODUCT,
        row.id,
        updated.version,
        {
            "quantity": updated.quantity,
            "delta": delta,
            "reason": reason,
            "order_id": order_id,
            "units_sold_delta": units_sold,
            "revenue_delta": _money(revenue),
        },
    )
    return updated.version


def place(tx: CommandTransaction, command: PlaceOrder) -> dict[str, Any]:
    lines = _resolve(command, _lock_products(tx, command))
    short = [
        {"sku": row.sku, "product_id": row.id, "requested": quantity, "available": row.quantity}
        for row, quantity in lines
        if row.quantity < quantity
    ]
    if short:
        names = ", ".join(f"{s['sku']} (requested {s['requested']}, available {s['available']})" for s in short)
        raise InsufficientStock(f"not enough stock for {names}", short=short)

    total = sum((row.price * quantity for row, quantity in lines), Decimal("0.00"))
    if total > MAX_PRICE:
        # The same lines are valid at other prices: a conflict with the products' current state.
        raise OrderTotalTooLarge(f"order total {total} is over the largest amount an order can carry ({MAX_PRICE})")
    order = tx.conn.execute(
        orders.insert()
        .values(
            customer=command.customer, status=PLACED, total=total, version=1,
            created_at=sa.func.now(), updated_at=sa.func.now(),
        )
        .returning(*orders.c)
    ).one()
    line_rows = [
        {
            "order_id": order.id,
            "line_no": number,
            "product_id": row.id,
            "sku": row.sku,
            "name": row.name,
            "unit_price": row.price,
            "quantity": quantity,
            "line_total": row.price * quantity,
        }
        for number, (row, quantity) in enumerate(lines, start=1)
    ]
    tx.conn.execute(order_lines.insert(), line_rows)
    product_versions = {
        row.id: _change_stock(tx, row, -quantity, order.id, events.ORDER_PLACED, quantity, row.price * quantity)
        for row, quantity in lines
    }
    event = tx.record(events.ORDER_PLACED, AGGREGATE, order.id, 1, _order_payload(order, line_rows))
    return {**_order_view(order, line_rows), "position": event.position, "product_versions": product_versions}


def cancel(tx: CommandTransaction, order_id: int) -> dict[str, Any]:
    """Cancel an order and restock its products. Cancelling a cancelled order changes nothing."""
    order = _lock_order(tx, order_id)
    line_rows = [dict(row._mapping) for row in tx.conn.execute(
        sa.select(order_lines).where(order_lines.c.order_id == order_id).order_by(order_lines.c.line_no)
    )]
    if order.status == CANCELLED:
        return {**_order_view(order, line_rows), "position": None, "product_versions": {}}
    quantities = {line["product_id"]: line for line in line_rows}
    locked = tx.conn.execute(
        sa.select(products).where(products.c.id.in_(quantities)).order_by(products.c.id).with_for_update()
    ).all()
    # Products with open orders cannot be deleted (see products.delete), so every one is here.
    product_versions = {
        row.id: _change_stock(
            tx, row, quantities[row.id]["quantity"], order_id, events.ORDER_CANCELLED,
            -quantities[row.id]["quantity"], -quantities[row.id]["line_total"],
        )
        for row in locked
    }
    order = tx.conn.execute(
        orders.update()
        .where(orders.c.id == order_id)
        .values(status=CANCELLED, version=orders.c.version + 1, updated_at=sa.func.now())
        .returning(*orders.c)
    ).one()
    event = tx.record(
        events.ORDER_CANCELLED, AGGREGATE, order_id, order.version,
        {"status": CANCELLED, "cancelled_at": order.updated_at.isoformat()},
    )
    return {**_order_view(order, line_rows), "position": event.position, "product_versions": product_versions}


def _lock_order(tx: CommandTransaction, order_id: int):
    row = None
    if 0 < order_id <= MAX_ID:
        row = tx.conn.execute(sa.select(orders).where(orders.c.id == order_id).with_for_update()).one_or_none()
    if row is None:
        raise NotFound(f"no order with id {order_id}", id=order_id)
    return row


def _line_view(line: dict[str, Any]) -> dict[str, Any]:
    return {key: line[key] for key in ("line_no", "product_id", "sku", "name", "quantity", "unit_price", "line_total")}


def _order_view(order, line_rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": order.id,
        "customer": order.customer,
        "status": order.status,
        "total": order.total,
        "version": order.version,
        "lines": [_line_view(line) for line in line_rows],
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def _order_payload(order, line_rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "customer": order.customer,
        "status": order.status,
        "total": _money(order.total),
        "placed_at": order.created_at.isoformat(),
        "lines": [
            {
                **_line_view(line),
                "unit_price": _money(line["unit_price"]),
                "line_total": _money(line["line_total"]),
            }
            for line in line_rows
        ],
    }
