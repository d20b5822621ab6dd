"""Exercise 02.2's scenario: the student's query, run as the relay, while commits arrive out of order.

The stack's own relay is paused; the check becomes the relay. Each round it asks the student's
`next_batch(stack, last_position)` what to publish, really publishes those events to RabbitMQ and
marks their rows, as the relay does. Between rounds the write side does what it does in real
life, made certain instead of left to timing:

    round 1   two products created (committed in position order)
              transaction A inserts its event (position a) and stays open
              transaction B inserts its event (position a + 1) and commits
              transaction C inserts its event (position a + 2) and rolls back: a hole
    round 2   only a + 1 is visible
              A commits: position a becomes visible, after a + 1 was published
              D commits (position a + 3)
    round 3   a and a + 3 are waiting
    round 4   nothing is

Whatever the student's relay leaves unpublished, the stack's relay publishes when it resumes, so
the notebook's read model still catches up.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import sqlalchemy as sa

from cqrs_demo.course.exercises.returned import whole_numbers
from cqrs_demo.course.student_code import run
from cqrs_demo.lab import faults
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.write import products as product_commands
from cqrs_demo.write.commands import ProductFields, ProductPatch
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import outbox
from cqrs_demo.write.transaction import command_transaction

MOST_PER_ROUND = 500  # a query that returns the whole outbox is reported, not republished without end


@dataclass(frozen=True)
class RelayRound:
    before: str  # what the write side did since the previous round
    expected: list[int]  # every committed row not yet published, oldest first
    positions: list[int]  # what the student's function returned
    error: str | None  # or what was wrong with it
    republished: list[int]  # returned, though their rows had been published already
    not_rows: list[int]  # returned, though no committed row has that position

    @property
    def shown(self) -> str:
        return self.error or str(self.positions)


@dataclass
class RelayRun:
    rounds: list[RelayRound]
    early: int  # committed at once, after `late` took its position
    late: int  # taken first, committed after `early` had been published
    hole: int  # taken by a transaction that rolled back
    late_product: int


@dataclass
class StudentRelay:
    stack: Any
    next_batch: Callable[[Any, int], Any]
    last_position: int
    rounds: list[RelayRound] = field(default_factory=list)

    def round(self, before: str, expected: list[int]) -> None:
        positions, problem = whole_numbers(run(self.next_batch, self.stack, self.last_position), MOST_PER_ROUND)
        with self.stack.engine.connect() as conn:
            rows = conn.execute(sa.select(outbox).where(outbox.c.position.in_(positions))).all() if positions else []
        by_position = {row.position: row for row in rows}
        republished = [p for p in positions if p in by_position and by_position[p].published_at is not None]
        not_rows = [p for p in positions if p not in by_position]
        self._publish([event_from_row(by_position[p]) for p in positions if p in by_position])
        self.rounds.append(RelayRound(before, expected, positions, problem, republished, not_rows))

    def _publish(self, events: list) -> None:
        """Publish and mark, as the relay does: confirmed by the broker first, marked after."""
        if not events:
            return
        faults.publish(self.stack, events)  # in the order the student's function chose
        positions = [event.position for event in events]
        with self.stack.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.position.in_(positions))
                         .values(published_at=sa.func.clock_timestamp()))
        self.last_position = max([self.last_position, *positions])


def run_relay_rounds(next_batch: Callable[[Any, int], Any], stack) -> RelayRun:
    client = WorkbenchClient.for_stack(stack)
    tag = uuid.uuid4().hex[:6].upper()
    stack.wait_published(timeout=30, what="the relay to publish every row so far")
    stack.pause("relay")
    try:
        relay = StudentRelay(stack, next_batch, _last_position(stack))
        jug = _accepted(client.create_product("Exercise 02.2 jug", "12.00", 5, f"EX02-{tag}-JUG"))
        bowl = _accepted(client.create_product("Exercise 02.2 bowl", "6.00", 5, f"EX02-{tag}-BOWL"))
        relay.round("two products created", [jug["position"], bowl["position"]])
        with command_transaction(stack.engine) as slow:
            late = product_commands.patch(slow, jug["id"], ProductPatch(price=Decimal("11.00")), None)["position"]
            early = _accepted(client.update_product(bowl["id"], price="5.50"))["position"]
            hole = _rolled_back(stack, tag)
            relay.round(f"{late} taken, not committed yet; {early} committed; {hole} rolled back", [early])
        after = _accepted(client.update_product(bowl["id"], quantity=4))["position"]
        relay.round(f"{late} committed late; {after} committed", [late, after])
        relay.round("nothing new committed", [])
    finally:
        stack.resume("relay")
    return RelayRun(relay.rounds, early, late, hole, jug["id"])


def _accepted(exchange) -> dict:
    if not exchange.ok:
        raise RuntimeError(f"exercise 02.2's scenario: {exchange.method} {exchange.url} answered "
                           f"{exchange.status} {exchange.body}")
    return exchange.body


def _rolled_back(stack, tag: str) -> int:
    """A command whose transaction takes a position and then rolls back, as a crash before COMMIT does."""

    class RolledBack(Exception):
        pass

    try:
        with command_transaction(stack.engine) as tx:
            ghost = product_commands.create(tx, ProductFields(name="Exercise 02.2 ghost", price=Decimal("1.00"),
                                                              quantity=1, sku=f"EX02-{tag}-GHOST"))
            raise RolledBack()
    except RolledBack:
        return ghost["position"]


def _last_position(stack) -> int:
    with stack.engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.coalesce(sa.func.max(outbox.c.position), 0)))
