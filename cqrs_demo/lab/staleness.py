"""Why does the read model differ from the write model right now? Field by field, with the events.

Every difference between a PostgreSQL row and its MongoDB document should be explained by
events that are committed but not yet applied: still in the outbox, or published and on their
way. A difference no pending event explains is flagged `unexplained`, which would be a bug.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from cqrs_demo.lab.side_by_side import _money
from cqrs_demo.messaging import events
from cqrs_demo.read import projection
from cqrs_demo.write.event_log import committed_events
from cqrs_demo.write.schema import products

FIELDS = ["name", "description", "price", "quantity", "sku"]
# Which fields each product event sets.
SETS = {
    events.PRODUCT_CREATED: set(FIELDS) | {"exists"},
    events.PRODUCT_UPDATED: set(FIELDS),
    events.PRODUCT_STOCK_CHANGED: {"quantity"},
    events.PRODUCT_DELETED: {"exists"},
}


def _pending(conn, product_id: int, read_version: int) -> list:
    events = committed_events()  # a product stuck for long may wait on an event already archived
    return conn.execute(
        sa.select(events)
        .where(
            events.c.aggregate_type == "product",
            events.c.aggregate_id == product_id,
            events.c.aggregate_version > read_version,
        )
        .order_by(events.c.aggregate_version)
    ).all()


def _describe(row) -> str:
    where = "in the outbox, not yet published" if row.published_at is None else "published, not yet applied"
    return f"v{row.aggregate_version} {row.type} (position {row.position}, {where})"


def explain_product(stack, product_id: int) -> pd.DataFrame:
    with stack.engine.connect() as conn:
        written = conn.execute(sa.select(products).where(products.c.id == product_id)).one_or_none()
        doc = stack.read_db[projection.PRODUCTS].find_one({"_id": product_id})
        read_version = doc["version"] if doc else 0
        pending = _pending(conn, product_id, read_version)
    write = {f: getattr(written, f) for f in FIELDS} if written else {}
    read = {}
    if doc and not doc.get("deleted"):
        read = {f: doc.get(f) for f in FIELDS if f != "price"} | {"price": _money(doc.get("price_cents"))}
    rows = []
    if bool(written) != bool(read):
        rows.append(("exists", bool(written), bool(read)))
    if written and read:
        rows += [(f, write[f], read[f]) for f in FIELDS if write[f] != read[f]]
    if written and read_version != written.version or (not written and pending):
        rows.append(("version", written.version if written else "deleted", read_version))
    result = []
    for field, write_value, read_value in rows:
        causes = [r for r in pending if field == "version" or field in SETS.get(r.type, set())]
        result.append(
            {
                "field": field,
                "PostgreSQL": write_value,
                "MongoDB": read_value,
                "explained by": "; ".join(_describe(r) for r in causes) or "nothing pending",
                "verdict": "explained" if causes else "UNEXPLAINED",
            }
        )
    return pd.DataFrame(result, columns=["field", "PostgreSQL", "MongoDB", "explained by", "verdict"])
