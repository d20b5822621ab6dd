"""An order's events delivered a second time, and what that did: notebook 07's deduplication experiment.

`redeliver_an_order(stack)` places one order for two new products, waits until the read model
shows it, publishes the order's three events again (`faults.redeliver`, as a relay restarted after
a crash would), waits until the projector has handled every second copy, whatever it did with it,
and measures. Run on a stack with the version check on and on one with it off
(`projector_dedup=False`), the same experiment shows what the check prevents.

The stack needs `projection_audit=True`: the application log is how we know that each second
copy was handled, and what the anomaly counters count.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab import anomalies, faults
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.skus import unused_sku
from cqrs_demo.polling import wait_until
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.read.projection import SALES

# The order: 3 widgets and 2 gadgets, so that a doubled sale is easy to see.
ORDER = {"Widget": ("4.00", 3), "Gadget": ("7.50", 2)}


@dataclass(frozen=True)
class Redelivery:
    """What one run of the experiment saw: units sold per product name, and the anomaly counters."""

    positions: list[int]
    units_before: dict[str, int]
    units_after: dict[str, int]
    anomalies: dict[str, int]


def redeliver_an_order(stack, timeout: float = 30) -> Redelivery:
    if not stack.settings.projection_audit:
        raise ValueError("start the stack with projection_audit=True: the experiment reads the application log")
    product_ids, positions = place_an_order(stack, timeout)
    before = units_sold(stack, product_ids)
    event_ids = stack.sql("SELECT event_id::text AS id FROM outbox WHERE position = ANY(:p)", p=positions)["id"].tolist()
    faults.redeliver(stack, positions)
    wait_until(lambda: _handled_twice(stack, event_ids), timeout,
               what=f"the projector to handle the second copy of each of the events at {positions}")
    return Redelivery(positions, before, units_sold(stack, product_ids), anomalies.measure(stack))


def place_an_order(stack, timeout: float = 30) -> tuple[dict[str, int], list[int]]:
    """One order for two new products, seen by the read model: the products' ids, the order's event positions."""
    shop = WorkbenchClient.for_stack(stack)
    product_ids = {}
    for name, (price, _) in ORDER.items():
        created = shop.create_product(name, price, 100, unused_sku(stack, f"SKU-NB07-{name.upper()}"))
        product_ids[name] = _accepted(created)["id"]
    lines = [{"product_id": product_ids[name], "quantity": quantity} for name, (_, quantity) in ORDER.items()]
    order = _accepted(shop.place_order("alice", lines))
    wait_until_equal(stack.engine, stack.read_db, timeout)
    events = stack.sql("SELECT position FROM outbox WHERE (aggregate_type = 'order' AND aggregate_id = :id)"
                       " OR payload->>'order_id' = CAST(:id AS text) ORDER BY position", id=order["id"])
    return product_ids, [int(position) for position in events["position"]]


def units_sold(stack, product_ids: dict[str, int]) -> dict[str, int]:
    """Units sold per product, as the read model's sales view holds them."""
    found = {doc["_id"]: doc.get("units_sold", 0) for doc in stack.read_db[SALES].find({"_id": {"$in": list(product_ids.values())}})}
    return {name: found.get(product_id, 0) for name, product_id in product_ids.items()}


def _handled_twice(stack, event_ids: list[str]) -> bool:
    logged = Counter(entry["event_id"] for entry in
                     stack.read_db[APPLICATIONS].find({"event_id": {"$in": event_ids}}, {"event_id": 1}))
    return all(logged[event_id] >= 2 for event_id in event_ids)


def _accepted(exchange) -> dict:
    if not exchange.ok:
        raise RuntimeError(f"{exchange.method} {exchange.url} answered {exchange.status} {exchange.body}")
    return exchange.body
