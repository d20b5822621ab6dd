"""The commands of a chaos run: products created, changed and replaced, orders placed and cancelled.

Workers send commands over HTTP at a steady pace from background threads until told to stop,
and record every answer. An accepted command's answer carries the position of the event it
committed; the evidence checks that each of those events is in the event log and reached the
read model. A refusal (an order for more than is in stock, say) is an answer too, and counted;
a request that got no answer at all (a timeout) may or may not have committed: the event log,
not the client, is the record of what was committed.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import requests

from cqrs_demo.lab.client import WorkbenchClient


class ChaosLoad:
    """`start()`, then `stop()`: mixed commands from `workers` threads, each `pace` seconds apart."""

    def __init__(self, command_url: str, query_url: str, seed: int, workers: int = 2, pace: float = 0.1,
                 products_per_worker: int = 8) -> None:
        self.command_url, self.query_url = command_url, query_url
        self.seed = seed
        self.workers = workers
        self.pace = pace
        self.products_per_worker = products_per_worker
        self.answers: Counter = Counter()  # (command, status or "no answer") -> how many
        self.positions: list[int] = []  # events committed by accepted commands
        self.refusals: dict[str, object] = {}  # "command status" -> the first answer's body, to say why
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> "ChaosLoad":
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, args=(number,), name=f"chaos-load-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def commands(self) -> int:
        return sum(self.answers.values())

    @property
    def accepted(self) -> int:
        return sum(count for (_, status), count in self.answers.items() if isinstance(status, int) and status < 300)

    def answers_by_status(self) -> dict[str, int]:
        """How many of each command got each answer, as "place order 409": 3."""
        return {f"{command} {status}": count for (command, status), count in sorted(self.answers.items(), key=str)}

    def _record(self, command: str, exchange) -> None:
        with self._lock:
            self.answers[(command, exchange.status)] += 1
            if exchange.ok and isinstance(exchange.body, dict) and exchange.body.get("position"):
                self.positions.append(int(exchange.body["position"]))
            elif not exchange.ok:
                self.refusals.setdefault(f"{command} {exchange.status}", exchange.body)

    def _work(self, number: int) -> None:
        rng = random.Random(f"{self.seed}-{number}")
        client = WorkbenchClient(self.command_url, self.query_url, timeout=15.0)
        worker = _Worker(number, rng, client, self.products_per_worker, self.seed)
        while not self._stop.wait(self.pace):
            try:
                command, exchange = worker.next_command()
            except requests.RequestException:
                with self._lock:
                    self.answers[("any", "no answer")] += 1
                continue
            self._record(command, exchange)


class _Worker:
    """One thread's commands: it owns its products and orders, so every choice it makes is valid."""

    def __init__(self, number: int, rng: random.Random, client: WorkbenchClient, products: int, seed: int) -> None:
        self.number, self.rng, self.client, self.products, self.seed = number, rng, client, products, seed
        self.product_ids: list[int] = []
        self.placed: list[int] = []
        self.sent = 0

    def next_command(self):
        self.sent += 1
        roll = self.rng.random()
        if len(self.product_ids) < self.products and (not self.product_ids or roll < 0.3):
            return "create product", self._create()
        if roll < 0.15 and self.placed:
            order_id = self.placed.pop(self.rng.randrange(len(self.placed)))
            return "cancel order", self.client.cancel_order(order_id)
        if roll < 0.35:
            exchange = self.client.place_order(
                f"c{self.number}", [{"product_id": self.rng.choice(self.product_ids), "quantity": self.rng.randint(1, 3)}]
            )
            if exchange.ok:
                self.placed.append(exchange.body["id"])
            return "place order", exchange
        if roll < 0.85:
            changes = {"quantity": self.rng.randint(0, 500), "price": f"{self.rng.randint(100, 9999) / 100:.2f}"}
            return "update product", self.client.update_product(self.rng.choice(self.product_ids), **changes)
        product_id = self.rng.choice(self.product_ids)
        # The price as a JSON number (a float here), as the contract asks: a string is refused.
        fields = {"name": f"chaos {self.number}-{self.sent}", "description": "replaced",
                  "price": self.rng.randint(100, 9999) / 100, "quantity": self.rng.randint(0, 500),
                  "sku": f"CHAOS-{self.seed}-{self.number}-{product_id}-{self.sent}"}
        return "replace product", self.client.replace_product(product_id, fields)

    def _create(self):
        exchange = self.client.create_product(
            f"chaos {self.number}-{self.sent}", f"{self.rng.randint(100, 9999) / 100:.2f}", self.rng.randint(50, 500),
            f"CHAOS-{self.seed}-{self.number}-{self.sent}", description="chaos run",
        )
        if exchange.ok:
            self.product_ids.append(exchange.body["id"])
        return exchange
