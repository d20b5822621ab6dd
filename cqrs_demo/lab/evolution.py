"""Evolving a live stack (notebook 09): a new event version, an old projector, retention, retries, the watermark.

Each function here is one step a running system goes through when its contract changes or its
history grows, done to a notebook's `LabStack` while it keeps serving:

- `write_product_events(stack, 2)`: the command service restarted with `product_event_version`,
  the way a deployment rolls out a new writer (the other processes keep running);
- `OldProjector(stack)`: the stack's projector replaced, for a while, by one that knows only
  version 1 of the product events, as a projector not yet redeployed would be;
- `events_table`, `held_streams`: what the event log and the read model's holds say;
- `prune_published`, `rebuild_from_log`: retention moves published rows out of the outbox, and
  the read model is still rebuilt from every event ever committed;
- `send_again`: one command retried with the same `Idempotency-Key`;
- `watermark_and_newest`, `watermark_caught_up`: the position the read model is complete up to,
  beside the newest one.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.polling import wait_until
from cqrs_demo.messaging import events
from cqrs_demo.read import poison
from cqrs_demo.read.projector import Projector
from cqrs_demo.read.rebuild import rebuild
from cqrs_demo.read.upcasting import UPCASTERS
from cqrs_demo.write import retention

# What a projector built before version 2 of the product events existed can read.
VERSION_1_ONLY = {events.PRODUCT_CREATED: 1, events.PRODUCT_UPDATED: 1}

_COLUMNS = "position, type, aggregate_type, aggregate_id, aggregate_version, schema_version, payload"
_EVENTS_SQL = f"""
    SELECT position, type, aggregate_id AS product_id, aggregate_version AS version, schema_version,
           payload -> 'price' AS price, kept_in
    FROM (SELECT {_COLUMNS}, 'outbox' AS kept_in FROM outbox
          UNION ALL SELECT {_COLUMNS}, 'event_log' AS kept_in FROM event_log) AS e
    WHERE aggregate_type = 'product' {{where}}
    ORDER BY position
"""


def write_product_events(stack, version: int) -> None:
    """Restart the command service so that it writes `product.created`/`updated` at schema `version`.

    Only the command service is restarted: the relay, the projector and the query service keep
    running with what they knew, as they would while a deployment rolls out one service.
    """
    stack.stack.settings = stack.stack.settings.with_(product_event_version=version)
    stack.settings = stack.settings.with_(product_event_version=version)
    stack.restart("command")


class OldProjector:
    """The stack's projector, replaced by one that knows only version 1 of the product events.

    `start()` (or `with OldProjector(stack):`) pauses the stack's projector process and consumes
    the same queue from a thread of this kernel, with an upcaster registry cut down to version 1.
    `stop()` stops it (what it has not acknowledged goes back to the queue) and starts the
    stack's own projector again, which knows version 2 and settles what the old one held.
    """

    # The one running per namespace: a cell run again must not leave a second one consuming.
    _running: dict[str, "OldProjector"] = {}

    def __init__(self, stack) -> None:
        self.stack = stack
        self._stop = threading.Event()
        self._projector: Projector | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "OldProjector":
        earlier = self._running.get(self.stack.settings.namespace)
        if earlier is not None:
            earlier._halt()
        self.stack.pause("projector")
        self._stop.clear()
        self._projector = Projector(self.stack.settings, upcasters=UPCASTERS.knowing_only(VERSION_1_ONLY))
        self._thread = threading.Thread(target=self._projector.run, args=(self._stop,), name="old projector",
                                        daemon=True)
        self._thread.start()
        self._running[self.stack.settings.namespace] = self
        return self

    def stop(self) -> None:
        """Stop the old projector and start the stack's own again (it knows version 2)."""
        self._halt()
        self.stack.resume("projector")

    def _halt(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(30)
            if self._thread.is_alive():
                raise RuntimeError("the old projector did not stop within 30 s")
            self._projector.client.close()
            self._thread = None
        if self._running.get(self.stack.settings.namespace) is self:
            del self._running[self.stack.settings.namespace]

    def __enter__(self) -> "OldProjector":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def events_table(stack, product_ids=None) -> pd.DataFrame:
    """Every committed product event (of `product_ids`, if given): its schema version and its price as sent."""
    where = ""
    params = {}
    if product_ids is not None:
        where, params = "AND aggregate_id = ANY(:ids)", {"ids": [int(pid) for pid in product_ids]}
    return stack.sql(_EVENTS_SQL.format(where=where), **params).set_index("position")


def held_streams(stack) -> pd.DataFrame:
    """The streams the read model holds back: which version each waits for, why, how many events are parked."""
    db = stack.read_db
    rows = [
        {"stream": doc["_id"], "waits_for": doc.get("waits_for"), "reason": doc.get("reason", ""),
         "parked": db[poison.PARKED].count_documents({"key": doc["_id"]})}
        for doc in db[poison.POISONED].find({}).sort("_id", 1)
    ]
    return pd.DataFrame(rows, columns=["stream", "waits_for", "reason", "parked"]).set_index("stream")


def prune_published(stack, timeout: float = 30.0) -> dict:
    """Move every published outbox row to the event log (retention with an age of zero); what moved.

    Waits for the read model to catch up first, so that every row has been published and the
    prune has everything to move.
    """
    wait_until_equal(stack.engine, stack.read_db, timeout)
    return retention.prune(stack.engine, timedelta(0)).as_dict()


def rebuild_from_log(stack, timeout: float = 30.0) -> dict:
    """Rebuild the read model from the event log (`cqrs-demo rebuild`); its outcome counts and a comparison."""
    counts = rebuild(stack.engine, stack.read_db)
    return {"replayed": counts, "comparison": wait_until_equal(stack.engine, stack.read_db, timeout)}


def send_again(client, method: str, path: str, body: dict, key: str, times: int) -> pd.DataFrame:
    """Send one command `times` times with the same `Idempotency-Key`, as a client retrying would; each answer."""
    rows = []
    for attempt in range(1, times + 1):
        answer = client.send(method, f"{client.command_url}{path}", body, {"Idempotency-Key": key})
        rows.append({"attempt": attempt, "status": answer.status,
                     "replayed": answer.headers.get("Idempotent-Replayed", ""),
                     "id": answer.body.get("id") if isinstance(answer.body, dict) else None,
                     "error": answer.body.get("error") if isinstance(answer.body, dict) else None})
    return pd.DataFrame(rows).set_index("attempt")


def watermark_and_newest(stack, client) -> dict[str, int]:
    """The watermark `/api/projection` serves, and the newest committed position, read in that order."""
    watermark = client.projection().body["watermark"]
    newest = stack.sql("SELECT coalesce(max(position), 0) AS p FROM "
                       "(SELECT position FROM outbox UNION ALL SELECT position FROM event_log) AS e").p[0]
    return {"watermark": int(watermark), "newest_position": int(newest)}


def watermark_caught_up(stack, client, timeout: float = 30.0) -> dict[str, int]:
    """Wait until the watermark has reached the newest committed position; both, as then read."""

    def caught_up() -> dict[str, int] | None:
        mark = watermark_and_newest(stack, client)
        return mark if mark["watermark"] >= mark["newest_position"] else None

    return wait_until(caught_up, timeout, what="the watermark to reach the newest committed position")
