"""Notebook 10, scaling the read side: several projectors, on one queue or on partitions.

`ScalingLab(stack)` runs extra projector processes beside the stack's own, holds events back
while every projector is stopped and times their catch-up (counting the gap retries), shows each
partition's consumer, depth and watermark, and finds out, from the queues themselves, which
partition the relay routed each product's events to.
"""

from __future__ import annotations

import random
import signal
import time

import pandas as pd

from cqrs_demo.connections import amqp_connection
from cqrs_demo.messaging import headers as message_headers
from cqrs_demo.polling import wait_until
from cqrs_demo.read import queries
from cqrs_demo.runtime import health, processes
from cqrs_demo.runtime.processes import Process
from cqrs_demo.write import products as product_commands
from cqrs_demo.write.commands import ProductPatch
from cqrs_demo.write.transaction import command_transaction


def partitions_table(stack) -> pd.DataFrame:
    """Each projector queue, as `/api/projection` shows it: consumer, depth, watermark, lag."""
    rows = queries.projection_status(stack.read_db)["partitions"]
    return pd.DataFrame(rows).set_index("partition")


class ScalingLab:
    def __init__(self, stack) -> None:
        self.stack = stack
        self.extras: list[Process] = []

    # -- projector processes -----------------------------------------------------------------

    def run_projectors(self, count: int) -> None:
        """Run `count` projectors: the stack's own and `count - 1` more, started together (so that
        each takes its own share of the partitions from the start)."""
        own = self.stack.stack.processes["projector"]
        if not own.alive():
            self.stack.stack.start_service("projector")
        while len(self.extras) < count - 1:
            log = self.stack.stack.directory / f"projector-{len(self.extras) + 2}.log"
            self.extras.append(processes.start_service("projector", self.stack.settings, log))
        while len(self.extras) > count - 1:
            self.extras.pop().stop()
        self.stack.resume("projector")  # waits until it is healthy

    def stop_projectors(self) -> None:
        self.run_projectors(1)
        self.stack.pause("projector")

    def kill_projector(self) -> str:
        """SIGKILL the projector that holds partition 0 (or the stack's own); returns its id."""
        holder = partitions_table(self.stack).loc[0, "consumer"] or ""
        pid = int(holder.split(":")[1]) if holder.count(":") == 2 else self.stack.stack.processes["projector"].pid
        for extra in self.extras:
            if extra.pid == pid:
                extra.signal(signal.SIGKILL)
                extra.wait(10)
                self.extras.remove(extra)
                return holder
        self.stack.kill("projector")
        return holder

    # -- events ------------------------------------------------------------------------------

    def seed(self, products: int) -> list[int]:
        """`products` new products; their ids."""
        from cqrs_demo.lab.client import WorkbenchClient

        client = WorkbenchClient.for_stack(self.stack)
        tag = f"{time.time_ns():x}"
        return [client.create_product(f"Scale {i}", "5.00", 1000, f"SC-{tag}-{i}").body["id"] for i in range(products)]

    def write_updates(self, product_ids: list[int], events: int) -> None:
        """`events` updates of products drawn from `product_ids` (the same draw every time), through
        the write side's own commands.

        Drawn, not taken in turn: RabbitMQ deals a queue's messages to its consumers in turn, so
        with products in turn every product could land on one projector (20 products, 2
        projectors: each product's events all even, or all odd) and the race would never show.
        """
        draw = random.Random(events)
        self._patch_in_order([draw.choice(product_ids) for _ in range(events)])

    def _patch_in_order(self, product_ids: list[int]) -> None:
        """One quantity update for each entry of `product_ids`, in that order, 100 per transaction."""
        per_transaction = 100
        for start in range(0, len(product_ids), per_transaction):
            with command_transaction(self.stack.engine) as tx:
                for n in range(start, min(start + per_transaction, len(product_ids))):
                    product_commands.patch(tx, product_ids[n], ProductPatch(quantity=n % 1000), None)

    def queue_updates(self, product_ids: list[int], events: int) -> None:
        """`write_updates`, then wait until the relay has published them all."""
        self.write_updates(product_ids, events)
        self.stack.wait_published(timeout=120)

    def wait_until_consuming(self, projectors: int) -> None:
        """Until every partition queue has `projectors` consumers: each projector is up and, with
        partitions, has taken its share and stands by on the rest (`STANDBY_DELAY`)."""
        wait_until(lambda: health.projector_consumers(self.stack.observer_settings) >= projectors, timeout=60,
                   interval=0.2, what=f"{projectors} projectors consuming")
        if self.stack.settings.partitions > 1:
            time.sleep(1.0)  # a handover the last one to join set off has finished

    def catch_up(self, product_ids: list[int], events: int, projectors: int) -> dict:
        """Hold `events` back with every projector stopped, start `projectors`, and time the drain.

        The events wait in the outbox, the relay stopped, until every projector consumes: a
        projector process takes a second or two to start, and the first one up would otherwise
        drain much of the backlog alone.
        """
        self.stop_projectors()
        self.stack.pause("relay")
        try:
            before = queries.projection_status(self.stack.read_db)
            self.write_updates(product_ids, events)
            target = before["applied"] + before["duplicates"] + events
            self.run_projectors(projectors)
            self.wait_until_consuming(projectors)
            started = time.monotonic()
        finally:
            self.stack.resume("relay")  # also when interrupted: the notebook's later cells need it

        def counted() -> bool:
            status = queries.projection_status(self.stack.read_db)
            return status["applied"] + status["duplicates"] >= target

        wait_until(counted, timeout=300, interval=0.05, what=f"{events} events applied")
        seconds = time.monotonic() - started
        after = queries.projection_status(self.stack.read_db)
        return {"projectors": projectors, "partitions": self.stack.settings.partitions, "events": events,
                "products": len(product_ids), "seconds": round(seconds, 2),
                "events_per_s": round(events / seconds), "gap_retries": after["gaps"] - before["gaps"]}

    # -- routes ------------------------------------------------------------------------------

    def routed_partitions(self, product_ids: list[int]) -> dict[int, int]:
        """Which partition queue the relay put each product's next event in, seen in the queues.

        With the projectors stopped, each product gets one update; then every queued message is
        read without being acknowledged (closing the connection puts them all back) and the
        product its headers name is noted with the queue it was in.
        """
        self.stop_projectors()
        try:
            self._patch_in_order(product_ids)
            self.stack.wait_published(timeout=120)
            found: dict[int, int] = {}
            connection = amqp_connection(self.stack.settings)
            try:
                channel = connection.channel()
                for k, queue in enumerate(self.stack.settings.projector_queues):
                    while True:
                        method, properties, _ = channel.basic_get(queue, auto_ack=False)
                        if method is None:
                            break
                        stream = message_headers.stream_of(properties.headers)
                        if stream and stream.aggregate_id in product_ids:
                            found[stream.aggregate_id] = k
            finally:
                connection.close()  # nothing was acknowledged: every message goes back
            return {pid: found[pid] for pid in product_ids if pid in found}
        finally:
            self.stack.resume("projector")

    def close(self) -> None:
        for extra in self.extras:
            extra.stop()
        self.extras = []
