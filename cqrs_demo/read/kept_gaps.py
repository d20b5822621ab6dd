"""Events that arrived before their predecessor, kept in hand until it is applied.

With two projectors on one queue, RabbitMQ deals a product's events to both, so one often holds
version 7 while the other is still applying 6. Handed back to the queue at once, 7 goes to the
front of it and is dealt again to either projector, and so is every later event of the product:
each round trip is another try for all of them, the tries grow with the backlog, and the pair
falls behind a load that one projector keeps up with. Kept in hand instead, an event is tried
again with the projector's next batch, a moment later, and of each product only the versions
that follow on from the lowest one in hand are tried: the ones above a hole cannot apply yet.

An event kept longer than `KEEP_SECONDS` goes back to the queue after all. Its predecessor may be
one the broker cannot deliver, with every projector's window full of later events.
"""

from __future__ import annotations

import time

from cqrs_demo.read.delivery import Delivery

KEEP_SECONDS = 2.0


class KeptGaps:
    def __init__(self, keep_seconds: float = KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._kept: list[Delivery] = []

    def __len__(self) -> int:
        return len(self._kept)

    def take(self, arrived: list[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """(to try now, to keep untried) from what is kept and what has arrived.

        Per stream, what is tried is the run of consecutive versions from the lowest in hand;
        everything above its first hole waits. A channel closed meanwhile took its deliveries
        with it: the broker puts them back in the queue.
        """
        in_hand = [d for d in self._kept if d.channel.is_open] + arrived
        self._kept = []
        streams: dict[str, list[Delivery]] = {}
        for delivery in in_hand:
            streams.setdefault(delivery.stream.key, []).append(delivery)
        now, later = [], []
        for run in streams.values():
            run.sort(key=lambda d: d.stream.aggregate_version)
            cut = 1
            while cut < len(run) and run[cut].stream.aggregate_version <= run[cut - 1].stream.aggregate_version + 1:
                cut += 1
            now += run[:cut]
            later += run[cut:]
        return now, later

    def keep(self, deliveries: list[Delivery]) -> None:
        """Keep these in hand, each since the first time it was kept."""
        now = time.monotonic()
        for delivery in deliveries:
            if delivery.kept_since is None:
                delivery.kept_since = now
        self._kept += deliveries

    def expired(self) -> list[Delivery]:
        """Take out the deliveries kept longer than `keep_seconds`: they go back to the queue."""
        deadline = time.monotonic() - self.keep_seconds
        expired = [d for d in self._kept if d.kept_since <= deadline]
        self._kept = [d for d in self._kept if d.kept_since > deadline]
        return expired
