"""Read-your-writes without hammering the read model: one poller for every waiting request.

A request with `min_version` waits until its document reaches that version. Polling MongoDB
from each waiting request would multiply the read load by the number of waiters, exactly when
the projector needs the database most. Instead every waiter registers here, and one background
thread asks MongoDB about all of them at once (one `$in` query per collection and tick) and
hands each waiter whose document has caught up the document it found. A request's first look
is the poller's too (registering wakes it): requests that arrive together are answered by one
query, and a woken request does not read its document again.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

POLL_SECONDS = 0.003


class _Waiter:
    __slots__ = ("min_version", "ready", "doc")

    def __init__(self, min_version: int) -> None:
        self.min_version = min_version
        self.ready = threading.Event()
        self.doc: dict | None = None


class VersionWatch:
    def __init__(self, db, interval: float = POLL_SECONDS) -> None:
        self.db = db
        self.interval = interval
        self._waiters: dict[tuple[str, Any], list[_Waiter]] = defaultdict(list)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def wait(self, collection: str, doc_id: Any, min_version: int, timeout: float) -> dict | None:
        """The document once at `min_version` or newer; after `timeout`, whatever it is then."""
        if timeout <= 0:
            return self.db[collection].find_one({"_id": doc_id})
        waiter = _Waiter(min_version)
        key = (collection, doc_id)
        with self._lock:
            self._waiters[key].append(waiter)
            self._ensure_thread()
        self._wake.set()
        try:
            caught_up = waiter.ready.wait(timeout)
        finally:
            with self._lock:
                self._waiters[key].remove(waiter)
                if not self._waiters[key]:
                    del self._waiters[key]
        return waiter.doc if caught_up else self.db[collection].find_one({"_id": doc_id})

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="version-watch", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                waiting = {key: list(waiters) for key, waiters in self._waiters.items()}
            if not waiting:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            by_collection: dict[str, list] = defaultdict(list)
            for collection, doc_id in waiting:
                by_collection[collection].append(doc_id)
            for collection, ids in by_collection.items():
                try:
                    found = {d["_id"]: d for d in self.db[collection].find({"_id": {"$in": ids}})}
                except Exception:  # a read-model hiccup: waiters time out and answer 503
                    continue
                for doc_id in ids:
                    doc = found.get(doc_id)
                    for waiter in waiting[(collection, doc_id)]:
                        if doc is not None and doc.get("version", 0) >= waiter.min_version:
                            waiter.doc = doc
                            waiter.ready.set()
            self._wake.wait(self.interval)
            self._wake.clear()
