"""Events for a read view of one's own: live from RabbitMQ, or all of them from the event log.

A new read view has two ways to get its events, and needs both:
- `EventTap`: a private queue bound to the stack's exchange, so the view receives every event
  published from now on, as the projector's queue does. It is exclusive and auto-delete: it
  belongs to this connection and goes away with it, which suits a look that lasts one cell.
- `event_log(stack)`: every event ever committed, oldest first: those still in the outbox and
  those moved to the archive (`write.event_log`), as one log. That is how a view that starts
  today learns about products created last year: it is rebuilt from the log, as `cqrs-demo
  rebuild` rebuilds the read model (into a new generation beside the live one, see
  `read.generations`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.events import Event
from cqrs_demo.polling import WaitTimeout
from cqrs_demo.write.event_log import event_log as committed_events


def event_log(stack) -> Iterator[Event]:
    """Every committed event of the stack, in position order."""
    return committed_events(stack.engine)


class EventTap:
    """`with EventTap(stack) as tap:` ... commands ... `tap.take(positions)`: their events, as delivered."""

    def __init__(self, stack) -> None:
        self.stack = stack
        self._connection = None

    def __enter__(self) -> "EventTap":
        settings = self.stack.observer_settings  # the real broker, never a fault proxy
        self._connection = amqp_connection(settings)
        self._channel = self._connection.channel()
        topology.declare_exchange(self._channel, settings)
        self._queue = self._channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self._channel.queue_bind(self._queue, settings.exchange, routing_key="#")
        return self

    def __exit__(self, *exc) -> None:
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        self._connection = None

    def take(self, positions: Iterable[int], timeout: float = 30.0) -> list[Event]:
        """Every event delivered until those at `positions` have all arrived, in delivery order."""
        waiting = set(positions)
        taken: list[Event] = []
        deadline = time.monotonic() + timeout
        for method, _, body in self._channel.consume(self._queue, auto_ack=True, inactivity_timeout=0.1):
            if method is not None:
                event = Event.from_json(body)
                taken.append(event)
                waiting.discard(event.position)
            if not waiting:
                break
            if time.monotonic() > deadline:
                self._channel.cancel()
                raise WaitTimeout(f"the events at positions {sorted(waiting)} on a private queue", timeout)
        self._channel.cancel()
        return taken
