"""How long the projector takes to catch up with a backlog, measured on a live stack (notebook 08).

`catch_up(stack, backlog, arrival_per_s)` pauses the projector, commits `backlog` product
updates, resumes it and, from the moment it consumes again, keeps committing new updates at
`arrival_per_s` (as clients do during any recovery) until it is *caught up*: the backlog applied
and the projector's queue found empty, so that what arrived meanwhile has been taken too. Events
in flight between the relay and the queue are not backlog, so the queue's ready count, read
straight from RabbitMQ, is what tells.

The backlog is published at full speed; then the stack's link to RabbitMQ (`faults=True`) is
slowed by `link_delay` each way for the catch-up itself, and brought back to full speed after it.
The updates are written by the write side's own command code in bulk, not over HTTP, so that
making them costs the machine little next to what is measured.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cqrs_demo.connections import amqp_connection
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.read import queries
from cqrs_demo.write import products as product_commands
from cqrs_demo.write.commands import ProductPatch
from cqrs_demo.write.transaction import command_transaction

PRODUCTS = 20  # the updates go round this many products
# The projector reaches RabbitMQ over a link this slow each way, as to a broker in another zone,
# while it catches up: a projector that waits for each message is then bound by the round trip,
# a rate a busy machine barely changes, so the measurements hold from one run to the next.
LINK_DELAY = 0.04


@dataclass(frozen=True)
class CatchUp:
    """One measured catch-up. `caught_up` is False when `timeout` came first."""

    backlog: int  # events waiting when arrivals started and the clock with them
    arrival_per_s: float  # the rate new events were committed at, measured
    seconds: float  # until the queue was first empty, or the timeout
    applied: int  # events the projector applied in that time
    caught_up: bool
    prefetch: int

    @property
    def processing_per_s(self) -> float:
        return self.applied / self.seconds if self.seconds else 0.0

    def seconds_for(self, backlog: int) -> float:
        """The catch-up time scaled to `backlog`: the projector takes a few events while it starts,
        so the measured backlog is a little smaller than the one committed, and at given rates the
        time is proportional to the backlog."""
        return self.seconds * backlog / self.backlog if self.backlog else 0.0


def catch_up(stack, backlog: int, arrival_per_s: float = 0.0, link_delay: float = LINK_DELAY,
             timeout: float = 60.0, **projector_settings) -> CatchUp:
    """`projector_settings` (e.g. `projector_prefetch=100`) are what the projector resumes with."""
    if stack.broker_link is None:
        raise ValueError("start the stack with faults=True: the catch-up runs over a slowed link to RabbitMQ")
    products = _products(stack)
    stack.pause("projector")
    before = _applied(stack)
    _commit_updates(stack, products, backlog)
    stack.wait_published(60, what=f"the relay to publish the backlog of {backlog}")
    stack.broker_link.slow(link_delay)
    try:
        stack.resume("projector", **projector_settings)  # once it consumes: it may have applied a few already
        return _measured(stack, products, backlog, before, arrival_per_s, timeout)
    finally:
        stack.broker_link.slow(0)


def _measured(stack, products: list[int], backlog: int, before: int, arrival_per_s: float, timeout: float) -> CatchUp:
    base = _applied(stack)
    waiting = backlog - (base - before)
    arrivals = _Arrivals(stack, products, arrival_per_s)
    started = time.monotonic()
    arrivals.start()
    try:
        caught_up = _wait_until_caught_up(stack, base + waiting, started + timeout)
        seconds = time.monotonic() - started
    finally:
        sent = arrivals.stop()
    return CatchUp(backlog=waiting, arrival_per_s=sent / seconds if seconds else 0.0, seconds=seconds,
                   applied=_applied(stack) - base, caught_up=caught_up, prefetch=stack.settings.projector_prefetch)


def _products(stack) -> list[int]:
    """The products the updates go to: created once per stack (the first time, through the API)."""
    rows = stack.sql("SELECT id FROM products WHERE sku LIKE 'CATCHUP-%' ORDER BY id")
    if len(rows) >= PRODUCTS:
        return rows["id"].tolist()[:PRODUCTS]
    client = WorkbenchClient.for_stack(stack)
    tag = f"{time.time_ns():x}"
    created = [client.create_product(f"Catch-up product {n}", "10.00", 1_000_000, f"CATCHUP-{tag}-{n}").body["id"]
               for n in range(PRODUCTS)]
    # Applied before the clock starts, so that they are not counted as the backlog's.
    wait_until_equal(stack.engine, stack.read_db, 60)
    return created


def _commit_updates(stack, products: list[int], count: int, start: int = 0) -> None:
    per_transaction = 100
    for first in range(start, start + count, per_transaction):
        with command_transaction(stack.engine) as tx:
            for n in range(first, min(first + per_transaction, start + count)):
                product_commands.patch(tx, products[n % len(products)], ProductPatch(quantity=n % 1000), None)


class _Arrivals:
    """Commits one update every 1/rate seconds in a thread, until stopped."""

    def __init__(self, stack, products: list[int], rate: float) -> None:
        self.stack, self.products, self.rate = stack, products, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="arrivals", daemon=True)

    def start(self) -> None:
        if self.rate > 0:
            self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.sent

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.wait(max(0.0, began + self.sent / self.rate - time.monotonic())):
            _commit_updates(self.stack, self.products, 1, start=self.sent)
            self.sent += 1


def _wait_until_caught_up(stack, backlog_applied: int, deadline: float) -> bool:
    """The backlog applied, and nothing waiting in the queue: what arrived meanwhile is taken too."""
    connection = amqp_connection(stack.observer_settings)  # the real broker, not a slowed link
    try:
        channel = connection.channel()
        while time.monotonic() < deadline:
            ready = channel.queue_declare(stack.settings.projector_queue, passive=True).method.message_count
            if ready == 0 and _applied(stack) >= backlog_applied:
                return True
            time.sleep(0.02)
        return False
    finally:
        connection.close()


def _applied(stack) -> int:
    return queries.projection_status(stack.read_db)["applied"]

