"""The relay's view of the outbox, reported to the read side so `/api/projection` can show it.

The query service never touches PostgreSQL, yet "how old is the oldest event not yet published"
is the first number to alert on when the relay is stuck. So the relay, which looks at the outbox
every cycle anyway, writes what it saw into the projection's status record (`_id: "relay"`): the
commit time of the oldest unpublished event (None when there is none), and when it looked. The
query service turns the first into an age at the moment it answers, so the age keeps growing
while a stuck relay writes nothing; the second shows how fresh the report is.

The writes happen in a thread of their own: MongoDB being away must never slow down publishing.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone

import pymongo.errors

from cqrs_demo.config import Settings
from cqrs_demo.connections import mongo_client

log = logging.getLogger(__name__)

STATUS = "projection_status"  # the read side's status record (read.projection.STATUS)
RECORD = "relay"


class RelayStatus:
    def __init__(self, settings: Settings, interval: float = 0.5) -> None:
        self.settings = settings
        self.interval = interval
        self._seen: dict | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def saw(self, oldest_unpublished: datetime | None, settled_position: int) -> None:
        with self._lock:
            self._seen = {
                "oldest_unpublished_at": oldest_unpublished,
                "settled_position": settled_position,
                "checked_at": datetime.now(timezone.utc),
            }

    def start(self, stop: threading.Event) -> None:
        if not self.settings.mongo_url:
            log.info("no MongoDB URL: the relay does not report the outbox backlog")
            return
        self._thread = threading.Thread(target=self._run, args=(stop,), name="relay-status", daemon=True)
        self._thread.start()

    def join(self, timeout: float = 5) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        client = mongo_client(self.settings, serverSelectionTimeoutMS=2000)
        status = client[self.settings.mongo_database][STATUS]
        try:
            while not stop.wait(self.interval):
                with self._lock:
                    seen, self._seen = self._seen, None
                if seen is None:
                    continue
                try:
                    status.update_one({"_id": RECORD}, {"$set": seen}, upsert=True)
                except pymongo.errors.PyMongoError as exc:
                    log.warning("relay could not report the outbox backlog (%s)", exc)
        finally:
            client.close()
