"""A crash drill: the projector killed as it takes a backlog, started again, and what became of the events.

`crash_drill(stack)` creates a few products of its own and pauses the projector; a burst of price
changes then waits in the projector's durable queue. It arms the failpoint `projector.applying`
for the first of those changes and starts the projector: it receives the backlog and is
SIGKILLed as it is about to apply it, before any of it reached MongoDB. The failpoint is
disarmed, the projector started again, and once it is idle the drill counts, for its own changes
only and against PostgreSQL, how many were lost, applied twice, or applied out of order.

What the crash costs depends on when the projector acknowledges a message. After the write
(`projector_ack="manual"`, the default), the killed projector's messages were never acknowledged,
so RabbitMQ hands them to the next one. On delivery (`projector_ack="auto"`), RabbitMQ forgot
each message the moment it sent it: whatever the dead projector held is gone, and so is every
later change of the same products, refused as a gap and, being acknowledged already, never retried.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import sqlalchemy as sa

from cqrs_demo import failpoints
from cqrs_demo.lab.anomalies import APPLYING, REACHED
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.polling import wait_until
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.runtime.health import projector_queue_counts
from cqrs_demo.write.event_log import committed_events

QUIET_SECONDS = 3.0  # nothing more of the drill applied for this long, and its queue empty: the projector is idle


def crash_drill(stack, products: int = 4, changes: int = 20) -> dict[str, int]:
    """Run the drill on `stack` (started with `projection_audit=True`); the anomaly counters of its changes."""
    if not stack.settings.projection_audit:
        raise ValueError("start the stack with LabStack(..., projection_audit=True): the drill counts "
                         "what the projector applied from its application log")
    client = WorkbenchClient.for_stack(stack)
    ids = _products(client, products)
    stack.pause("projector")
    try:
        positions = [_accepted(client.update_product(ids[n % products], price=f"{11 + n}.00"))["position"]
                     for n in range(changes)]
        event_ids = _event_ids(stack, positions)
        wait_until(lambda: _ready(stack) >= changes, timeout=30, what="the drill's changes in the projector's queue")
        _kill_projector_taking(stack, event_ids[0])
    finally:
        failpoints.disarm(stack.settings, failpoints.PROJECTOR_APPLYING)
        stack.resume("projector")
    _wait_idle(stack, event_ids)
    return _counted(stack, event_ids)


def _products(client: WorkbenchClient, count: int) -> list[int]:
    tag = uuid.uuid4().hex[:6].upper()
    created = [_accepted(client.create_product(f"Drill product {n}", "10.00", 100, f"DRILL-{tag}-{n}"))
               for n in range(count)]
    for product in created:
        wait_until(lambda: client.product(product["id"], min_version=product["version"]).status == 200,
                   timeout=30, what="the drill's products in the read model")
    return [product["id"] for product in created]


def _event_ids(stack, positions: list[int]) -> list[str]:
    """The ids of the events at these positions, in position order."""
    events = committed_events()
    with stack.engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.event_id).where(events.c.position.in_(positions))
                            .order_by(events.c.position)).all()
    return [str(row.event_id) for row in rows]


def _ready(stack) -> int:
    counts = projector_queue_counts(stack.observer_settings)
    return counts[0] if counts else 0


def _kill_projector_taking(stack, first_event_id: str) -> None:
    """Start the projector with a failpoint that kills it as it is about to apply `first_event_id`.

    The queue hands over the oldest message first, so the first batch the projector takes holds
    that event: it dies with the backlog in hand and nothing of it applied.
    """
    failpoints.arm(stack.settings, failpoints.PROJECTOR_APPLYING, event_id=first_event_id)
    projector = stack.stack.start_service("projector")
    wait_until(lambda: not projector.alive(), timeout=60, what="the projector to die at the failpoint")


def _wait_idle(stack, event_ids: list[str]) -> None:
    """Until every change of the drill is applied, or none is waiting and no more are logged for a while."""
    drill = {"event_id": {"$in": event_ids}}
    last = {"logged": -1, "since": time.monotonic()}

    def idle() -> bool:
        applications = stack.read_db[APPLICATIONS]
        if len(applications.distinct("event_id", {**drill, "outcome": {"$in": sorted(REACHED)}})) == len(event_ids):
            return True
        logged = applications.count_documents(drill)
        if logged != last["logged"] or _ready(stack) > 0:
            last.update(logged=logged, since=time.monotonic())
            return False
        return time.monotonic() - last["since"] >= QUIET_SECONDS

    wait_until(idle, timeout=120, interval=0.2, what="the projector to finish with the drill's changes")


def _counted(stack, event_ids: list[str]) -> dict[str, int]:
    logged = list(stack.read_db[APPLICATIONS].find({"event_id": {"$in": event_ids}}, {"event_id": 1, "outcome": 1}))
    applied = Counter(entry["event_id"] for entry in logged if entry["outcome"] in APPLYING)
    reached = {entry["event_id"] for entry in logged if entry["outcome"] in REACHED}
    return {
        "events committed": len(event_ids),
        "events lost": sum(1 for event_id in event_ids if event_id not in reached),
        "events applied twice": sum(count - 1 for count in applied.values() if count > 1),
        "events applied out of order": sum(1 for entry in logged if entry["outcome"] == Outcome.OVERWROTE_NEWER.value),
    }


def _accepted(exchange) -> dict:
    if not exchange.ok:
        raise RuntimeError(f"the crash drill: {exchange.method} {exchange.url} answered {exchange.status} {exchange.body}")
    return exchange.body
