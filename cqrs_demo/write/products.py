"""Product commands: create, replace, patch and delete, each with its event in the outbox.

Each handler runs inside a `CommandTransaction`. Updates take the product's row lock before
recording their event, so two commands on one product commit, and number their events, one
after the other: per-product event order is the commit order.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from cqrs_demo.errors import DuplicateSku, NotFound, PreconditionFailed, ProductInOpenOrders
from cqrs_demo.etags import Precondition, etag
from cqrs_demo.messaging import events, product
from cqrs_demo.write.commands import ProductFields, ProductPatch
from cqrs_demo.write.schema import order_lines, orders, products
from cqrs_demo.write.transaction import CommandTransaction

MAX_ID = 2**63 - 1
AGGREGATE = "product"


def as_dict(row) -> dict[str, Any]:
    """A product row as the command service answers it: every column."""
    return dict(row._mapping)


def event_payload(row: dict[str, Any], schema_version: int = 1) -> dict[str, Any]:
    """The product's full state as the event carries it: money as an exact decimal string.

    Version 2 of the contract names the currency beside the amount (see `messaging.events`).
    """
    payload = product.payload(row)
    if schema_version == 2:
        payload["price"] = events.price_v2(payload["price"])
    return payload


def _record_state(tx: CommandTransaction, type: str, state: dict[str, Any]):
    version = tx.product_event_version
    return tx.record(type, AGGREGATE, state["id"], state["version"], event_payload(state, version), version)


@contextmanager
def _unique_sku(sku: str):
    """Turn the sku's unique index into a 409 instead of a 500.

    The IntegrityError aborts the transaction; the DuplicateSku raised in its place leaves the
    command transaction, which rolls it back. No savepoint, no extra round trip.
    """
    try:
        yield
    except IntegrityError as exc:
        if "sku" not in str(exc.orig):
            raise
        raise DuplicateSku(f"a product with sku {sku!r} already exists", sku=sku) from None


# Built once, run with bound parameters: see `outbox` for why.
_CREATE = products.insert().values(version=1, created_at=sa.func.now(), updated_at=sa.func.now()).returning(*products.c)


def create(tx: CommandTransaction, fields: ProductFields) -> dict[str, Any]:
    with _unique_sku(fields.sku):
        row = tx.conn.execute(_CREATE, fields.model_dump()).one()
    created = as_dict(row)
    event = _record_state(tx, events.PRODUCT_CREATED, created)
    return {**created, "position": event.position}


def replace(
    tx: CommandTransaction, product_id: int, fields: ProductFields, precondition: Precondition | None
) -> dict[str, Any]:
    return _update(tx, product_id, fields.model_dump(), precondition)


def patch(
    tx: CommandTransaction, product_id: int, patch: ProductPatch, precondition: Precondition | None
) -> dict[str, Any]:
    return _update(tx, product_id, patch.changes(), precondition)


def _update(
    tx: CommandTransaction, product_id: int, changes: dict[str, Any], precondition: Precondition | None
) -> dict[str, Any]:
    # One statement does the lock, the version check and the change; only a miss needs a second
    # look, to tell "no such product" (404) from "stale version" (412).
    versions = precondition.versions if precondition is not None else None
    row = None
    if 0 < product_id <= MAX_ID:
        statement = _update_statement(tuple(sorted(changes)), versions is not None)
        parameters = {**changes, "product_id": product_id, "versions": sorted(versions or ())}
        with _unique_sku(changes.get("sku", "")):
            row = tx.conn.execute(statement, parameters).one_or_none()
    if row is None:
        _check_version(lock(tx, product_id), precondition)
    updated = as_dict(row)
    event = _record_state(tx, events.PRODUCT_UPDATED, updated)
    return {**updated, "position": event.position}


@functools.cache
def _update_statement(fields: tuple[str, ...], checks_version: bool) -> sa.Update:
    """The update of these fields, built once per set of fields (see `outbox` for why)."""
    condition = products.c.id == sa.bindparam("product_id")
    if checks_version:
        condition &= products.c.version == sa.any_(sa.bindparam("versions", type_=ARRAY(sa.Integer)))
    return (
        products.update()
        .where(condition)
        .values(**{name: sa.bindparam(name) for name in fields},
                version=products.c.version + 1, updated_at=sa.func.now())
        .returning(*products.c)
    )


def delete(tx: CommandTransaction, product_id: int, precondition: Precondition | None) -> dict[str, Any]:
    """Delete a product; its deletion is one more version, so the read side can order it.

    A product that placed (not cancelled) orders still reference cannot be deleted: cancelling
    such an order must be able to put the stock back and reverse the sale on the product's own
    event stream. Cancel the orders first, or set the product's quantity to 0 to stop sales.
    """
    current = lock(tx, product_id)
    _check_version(current, precondition)
    blocking = open_orders_for(tx.conn, product_id)
    if blocking:
        raise ProductInOpenOrders(
            f"product {product_id} is on open orders {blocking}; cancel them first", id=product_id, orders=blocking
        )
    tx.conn.execute(products.delete().where(products.c.id == product_id))
    version = current.version + 1
    event = tx.record(
        events.PRODUCT_DELETED, AGGREGATE, product_id, version, {"sku": current.sku, "name": current.name}
    )
    return {"id": product_id, "deleted": True, "version": version, "position": event.position}


def open_orders_for(conn, product_id: int) -> list[int]:
    """Ids of placed (not cancelled) orders that have a line for this product (at most 20)."""
    return list(
        conn.scalars(
            sa.select(orders.c.id)
            .join(order_lines, order_lines.c.order_id == orders.c.id)
            .where(order_lines.c.product_id == product_id, orders.c.status == "placed")
            .order_by(orders.c.id)
            .limit(20)
        )
    )


def lock(tx: CommandTransaction, product_id: int):
    """The product's current row, locked until the transaction ends; 404 when there is none."""
    row = None
    if 0 < product_id <= MAX_ID:
        row = tx.conn.execute(
            sa.select(products).where(products.c.id == product_id).with_for_update()
        ).one_or_none()
    if row is None:
        raise NotFound(f"no product with id {product_id}", id=product_id)
    return row


def _check_version(current, precondition: Precondition | None) -> None:
    if precondition is not None and not precondition.matches(current.version):
        raise PreconditionFailed(
            f"product {current.id} is at version {current.version} (ETag {etag(current.version)}); "
            f"If-Match {precondition.header} does not match it",
            id=current.id,
            current_version=current.version,
        )
