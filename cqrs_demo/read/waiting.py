"""Read-your-writes without hammering the read model: one watcher for every waiting request.

A request with `min_version` waits until its document reaches that version. Polling MongoDB
from each waiting request would multiply the read load by the number of waiters, exactly when
the projector needs the database most. Instead every waiter registers here, and one background
thread reads the documents waited for, all of a collection in one `$in` query, and hands each
waiter whose document has caught up the document it found; a woken request does not read it
again.

When to read comes from the projector's notices (`notices`): a document is read when a notice
says it reached a version someone waits for, and on a request's first look, unless the notices
already say it is not there yet. Notices are hints, so everything waited for is also read now
and then (`SAFETY_POLL_SECONDS`); while no notices flow (the broker unreachable, or no feed at
all) everything waited for is read every `POLL_SECONDS`, as before notices existed.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any, Callable

POLL_SECONDS = 0.003  # while no notices flow
SAFETY_POLL_SECONDS = 0.1  # while they do: the longest a lost notice delays an answer
KNOWN_LIMIT = 100_000  # announced versions remembered; beyond, forgotten (first looks again)

Key = tuple[str, Any]
Feed = Callable[[Callable[[list], None], Callable[[bool], None], threading.Event], None]


class _Waiter:
    __slots__ = ("min_version", "ready", "doc")

    def __init__(self, min_version: int) -> None:
        self.min_version = min_version
        self.ready = threading.Event()
        self.doc: dict | None = None


class VersionWatch:
    def __init__(self, db, interval: float = POLL_SECONDS, feed: Feed | None = None,
                 safety_interval: float = SAFETY_POLL_SECONDS) -> None:
        """`feed(on_notices, on_live, stop)`, if given, runs in a thread of its own from the first
        wait on, delivering notices (`notices.follow`)."""
        self.db = db
        self.interval = interval
        self.safety_interval = safety_interval
        self._feed = feed
        self._waiters: dict[Key, list[_Waiter]] = defaultdict(list)
        self._due: set[Key] = set()  # to read at the next wake-up
        self._known: dict[Key, int] = {}  # the newest version announced for each document
        self._live = False  # notices are flowing
        self._next_poll: float | None = None  # when everything waited for is read next; None: no waiters
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._feed_thread: threading.Thread | None = None

    def wait(self, collection: str, doc_id: Any, min_version: int, timeout: float) -> dict | None:
        """The document once at `min_version` or newer; after `timeout`, whatever it is then."""
        if timeout <= 0:
            return self.db[collection].find_one({"_id": doc_id})
        waiter = _Waiter(min_version)
        key = (collection, doc_id)
        with self._lock:
            self._waiters[key].append(waiter)
            self._ensure_threads()
            if not (self._live and self._known.get(key, min_version) < min_version):
                self._due.add(key)  # nothing says it is not there yet: look now
        self._wake.set()
        try:
            caught_up = waiter.ready.wait(timeout)
        finally:
            with self._lock:
                self._waiters[key].remove(waiter)
                if not self._waiters[key]:
                    del self._waiters[key]
                if not self._waiters:
                    self._next_poll = None  # the next waiter's first poll is an interval after it came
        return waiter.doc if caught_up else self.db[collection].find_one({"_id": doc_id})

    def applied(self, notices: list[tuple[str, Any, int]]) -> None:
        """The projector brought these documents to these versions: read those waited for."""
        woken = False
        with self._lock:
            if len(self._known) > KNOWN_LIMIT:
                self._known.clear()
            for collection, doc_id, version in notices:
                key = (collection, doc_id)
                self._known[key] = max(version, self._known.get(key, 0))
                if any(w.min_version <= version for w in self._waiters.get(key, ())):
                    self._due.add(key)
                    woken = True
        if woken:
            self._wake.set()

    def live(self, flowing: bool) -> None:
        """Notices started (or stopped) flowing; any sent meanwhile were missed."""
        with self._lock:
            self._live = flowing
            self._known.clear()
            self._due.update(self._waiters)
            self._next_poll = None
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    def _ensure_threads(self) -> None:
        # The feed is started once: it reconnects by itself and only ends on close(), and a
        # second one beside it would double every notice.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="version-watch", daemon=True)
            self._thread.start()
        if self._feed is not None and self._feed_thread is None:
            self._feed_thread = threading.Thread(target=self._feed, args=(self.applied, self.live, self._stop),
                                                 name="applied-notices", daemon=True)
            self._feed_thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._wake.clear()
                waiting = {key: list(self._waiters[key]) for key in self._to_read(time.monotonic())}
            if waiting:
                self._read(waiting)
            with self._lock:
                pause = 1.0 if self._next_poll is None else max(0.0, self._next_poll - time.monotonic())
            self._wake.wait(pause)

    def _to_read(self, now: float) -> set[Key]:
        """What to read now: everything waited for when a poll is due, else what was asked for."""
        if not self._waiters:
            self._next_poll = None
            return set()
        if self._next_poll is None:  # waiting began: the first poll comes an interval later
            self._next_poll = now + (self.safety_interval if self._live else 0.0)
        due, self._due = self._due, set()
        if now < self._next_poll:
            return due & self._waiters.keys()
        self._next_poll = now + (self.safety_interval if self._live else self.interval)
        return set(self._waiters)

    def _read(self, waiting: dict[Key, list[_Waiter]]) -> None:
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
