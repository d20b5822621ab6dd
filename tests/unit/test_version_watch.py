"""Read-your-writes waiting, on a fake collection: one poller for every waiter, and a woken waiter
gets the document the poller found instead of reading it again."""

from __future__ import annotations

import threading

from cqrs_demo.polling import wait_until
from cqrs_demo.read.waiting import VersionWatch


class FakeCollection:
    """Documents by id; counts the reads, and lets a test move a document on."""

    def __init__(self) -> None:
        self.docs: dict[int, dict] = {}
        self.reads = 0
        self.single_reads = 0
        self.lock = threading.Lock()

    def find_one(self, query: dict) -> dict | None:
        with self.lock:
            self.reads += 1
            self.single_reads += 1
            doc = self.docs.get(query["_id"])
            return dict(doc) if doc else None

    def find(self, query: dict) -> list[dict]:
        with self.lock:
            self.reads += 1
            return [dict(self.docs[i]) for i in query["_id"]["$in"] if i in self.docs]


def _watch() -> tuple[VersionWatch, FakeCollection]:
    products = FakeCollection()
    return VersionWatch({"products": products}, interval=0.001), products


def test_a_document_already_there_is_answered_by_the_first_poll() -> None:
    watch, products = _watch()
    products.docs[1] = {"_id": 1, "version": 3}
    assert watch.wait("products", 1, 2, timeout=1.0) == {"_id": 1, "version": 3}
    assert products.single_reads == 0


def test_requests_waiting_together_are_answered_by_one_query() -> None:
    watch, products = _watch()
    products.docs.update({i: {"_id": i, "version": 1} for i in range(1, 4)})
    answers: list[dict | None] = []
    waiters = [threading.Thread(target=lambda i=i: answers.append(watch.wait("products", i, 2, timeout=5.0)))
               for i in range(1, 4)]
    for waiter in waiters:
        waiter.start()
    wait_until(lambda: len(watch._waiters) == 3, timeout=5, interval=0.001, what="three waiters registered")
    with products.lock:
        for i in range(1, 4):
            products.docs[i] = {"_id": i, "version": 2}
        reads_before = products.reads
    for waiter in waiters:
        waiter.join(5.0)
    assert sorted(a["_id"] for a in answers) == [1, 2, 3]
    assert products.reads - reads_before <= 2  # one poll found all three (and at most one more ran)


def test_a_waiter_gets_the_version_the_poller_found_without_reading_again() -> None:
    watch, products = _watch()
    products.docs[1] = {"_id": 1, "version": 1, "name": "old"}
    answer: list[dict | None] = []
    waiting = threading.Thread(target=lambda: answer.append(watch.wait("products", 1, 2, timeout=5.0)))
    waiting.start()
    # Polled a few times at version 1: registered, and not woken by an older version.
    wait_until(lambda: products.reads >= 3, timeout=5, interval=0.001, what="three polls")
    with products.lock:
        products.docs[1] = {"_id": 1, "version": 2, "name": "new"}
    waiting.join(5.0)
    assert answer == [{"_id": 1, "version": 2, "name": "new"}]
    assert products.single_reads == 0  # every look was the poller's, and its answer was handed over


def test_a_waiter_that_times_out_gets_whatever_is_there_then() -> None:
    watch, products = _watch()
    products.docs[1] = {"_id": 1, "version": 1}
    assert watch.wait("products", 1, 2, timeout=0.05) == {"_id": 1, "version": 1}
    assert watch.wait("products", 7, 1, timeout=0.05) is None
