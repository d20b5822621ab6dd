"""What one command left behind: the events it appended, and how far its product has travelled.

- `events_of(stack, exchange)`: the outbox rows a command's transaction appended (a product
  command appends one; placing or cancelling an order one per product line, plus the order's).
- `product_whereabouts(stack, client, product_id)`: for each place a change passes on its way
  from the write side to the read side, whether the product's latest version has reached it.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from cqrs_demo.read import projection
from cqrs_demo.write.schema import outbox, products

YES, NO = "yes", "no"


def events_of(stack, exchange) -> pd.DataFrame:
    """The outbox rows the command behind `exchange` (a `WorkbenchClient` answer) appended, by position.

    The answer names the command's own event (`position`) and, for an order, the version each
    product reached (`product_versions`): their stock changes are events on the products' streams.
    """
    body = exchange.body if exchange.ok and isinstance(exchange.body, dict) else {}
    wanted = []
    if body.get("position") is not None:
        wanted.append(outbox.c.position == body["position"])
    for product_id, version in (body.get("product_versions") or {}).items():
        wanted.append(sa.and_(outbox.c.aggregate_type == "product", outbox.c.aggregate_id == int(product_id),
                              outbox.c.aggregate_version == int(version)))
    columns = ["position", "type", "aggregate_type", "aggregate_id", "aggregate_version"]
    if not wanted:
        return pd.DataFrame(columns=columns)
    with stack.engine.connect() as conn:
        rows = conn.execute(
            sa.select(*(outbox.c[name] for name in columns)).where(sa.or_(*wanted)).order_by(outbox.c.position)
        ).all()
    return pd.DataFrame(rows, columns=columns)


def product_whereabouts(stack, client, product_id: int) -> pd.DataFrame:
    """Whether the product's latest version has reached each place, with what was found there.

    Each place is asked directly: PostgreSQL's tables, the relay's mark on the outbox row (set
    only once RabbitMQ confirmed the message), the MongoDB document, the query service's answer.
    """
    with stack.engine.connect() as conn:
        version = conn.scalar(sa.select(products.c.version).where(products.c.id == product_id))
        event = conn.execute(
            sa.select(outbox.c.position, outbox.c.aggregate_version, outbox.c.published_at)
            .where(outbox.c.aggregate_type == "product", outbox.c.aggregate_id == product_id)
            .order_by(outbox.c.position.desc()).limit(1)
        ).one_or_none()
    latest = version or (event.aggregate_version if event else None)
    document = stack.read_db[projection.PRODUCTS].find_one({"_id": product_id}, {"version": 1})
    served = client.product(product_id)
    read_version = document["version"] if document else None
    served_version = served.body.get("version") if served.ok else None
    places = {
        "the products table (PostgreSQL)": (
            version is not None, f"version {version}" if version else "no row"),
        "the outbox table (PostgreSQL)": (
            event is not None and event.aggregate_version == latest,
            f"event of version {event.aggregate_version} at position {event.position}" if event else "no event"),
        "RabbitMQ": (
            event is not None and event.published_at is not None,
            "published, confirmed by the broker" if event is not None and event.published_at else "not published yet"),
        "the read model (MongoDB)": (
            read_version is not None and latest is not None and read_version >= latest,
            f"document at version {read_version}" if document else "no document"),
        "the query service's answer": (
            served_version is not None and latest is not None and served_version >= latest,
            f"{served.status}, version {served_version}" if served.ok else f"{served.status} {served.body.get('error', '')}"),
    }
    frame = pd.DataFrame(
        [{"place": place, "has it": YES if has else NO, "what is there": found} for place, (has, found) in places.items()]
    )
    frame.attrs["version"] = latest
    return frame.set_index("place")
