"""Read-your-writes waiting, on a fake collection: one poller for every waiter, and a woken waiter
gets the document the poller found instead of reading it again."""

from __future__ import annotations

import threading
import time

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


# -- with the projector's notices ------------------------------------------------------------------

def _noticed_watch(safety_interval: float = 10.0) -> tuple[VersionWatch, FakeCollection]:
    """A started watch whose notices flow (the feed is the test), and whose safety poll is far away."""
    products = FakeCollection()
    watch = VersionWatch({"products": products}, interval=0.001, safety_interval=safety_interval,
                         feed=lambda on_notices, on_live, stop: on_live(True))
    with watch._lock:
        watch._ensure_threads()
    wait_until(lambda: watch._live, timeout=5, interval=0.001, what="notices flowing")
    return watch, products


def _waiting(watch: VersionWatch, doc_id: int, min_version: int, timeout: float = 5.0):
    answer: list[dict | None] = []
    thread = threading.Thread(target=lambda: answer.append(watch.wait("products", doc_id, min_version, timeout)))
    thread.start()
    wait_until(lambda: ("products", doc_id) in watch._waiters, timeout=5, interval=0.001, what="registered")
    return thread, answer


def test_a_notice_wakes_the_waiter_and_nothing_is_read_before_it() -> None:
    watch, products = _noticed_watch()
    products.docs[1] = {"_id": 1, "version": 1}
    watch.applied([("products", 1, 1)])
    thread, answer = _waiting(watch, 1, 2)
    time.sleep(0.05)
    assert products.reads == 0  # the notices say version 1: no first look, no polling
    with products.lock:
        products.docs[1] = {"_id": 1, "version": 2}
    watch.applied([("products", 1, 2)])
    thread.join(5.0)
    assert answer == [{"_id": 1, "version": 2}]
    assert products.reads == 1 and products.single_reads == 0


def test_a_notice_of_an_older_version_reads_nothing() -> None:
    watch, products = _noticed_watch()
    products.docs[1] = {"_id": 1, "version": 1}
    watch.applied([("products", 1, 1)])
    thread, answer = _waiting(watch, 1, 3)
    watch.applied([("products", 1, 2), ("products", 9, 5)])  # not yet its version; not its document
    time.sleep(0.05)
    assert products.reads == 0
    products.docs[1] = {"_id": 1, "version": 3}
    watch.applied([("products", 1, 3)])
    thread.join(5.0)
    assert answer == [{"_id": 1, "version": 3}]


def test_a_document_never_announced_gets_a_first_look() -> None:
    watch, products = _noticed_watch()
    products.docs[1] = {"_id": 1, "version": 4}  # applied before this query service listened
    assert watch.wait("products", 1, 4, timeout=5.0) == {"_id": 1, "version": 4}


def test_a_lost_notice_costs_only_the_safety_poll() -> None:
    watch, products = _noticed_watch(safety_interval=0.2)
    products.docs[1] = {"_id": 1, "version": 1}
    watch.applied([("products", 1, 1)])
    thread, answer = _waiting(watch, 1, 2)
    products.docs[1] = {"_id": 1, "version": 2}  # and no notice comes
    started = time.monotonic()
    thread.join(5.0)
    assert answer == [{"_id": 1, "version": 2}]
    assert time.monotonic() - started < 1.0


def test_when_notices_stop_flowing_the_watch_polls_again() -> None:
    watch, products = _noticed_watch()
    products.docs[1] = {"_id": 1, "version": 1}
    watch.applied([("products", 1, 1)])
    thread, answer = _waiting(watch, 1, 2)
    watch.live(False)  # the broker went away: whatever the notices said may be out of date
    products.docs[1] = {"_id": 1, "version": 2}
    started = time.monotonic()
    thread.join(5.0)
    assert answer == [{"_id": 1, "version": 2}]
    assert time.monotonic() - started < 0.5


def test_one_feed_runs_whatever_happens_to_the_watcher_thread() -> None:
    started: list[int] = []

    def feed(on_notices, on_live, stop) -> None:
        started.append(1)
        stop.wait()

    watch = VersionWatch({"products": FakeCollection()}, interval=0.001, feed=feed)
    with watch._lock:
        watch._ensure_threads()
        watch._thread = threading.Thread(target=lambda: None)  # as if the watcher thread had ended
        watch._thread.start()
        watch._thread.join()
        watch._ensure_threads()
    try:
        assert watch._thread.is_alive()
        assert len(started) == 1
    finally:
        watch.close()
