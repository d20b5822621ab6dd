"""Rebuilding the read model from the event log, beside the live one, without taking it down.

The event log (`write.event_log`: the archived events, then those still in the outbox) holds
every event the write side ever committed, so the read model is a pure function of it. A
rebuild fills the next generation (`generations`) from it while the live generation keeps
serving reads and the projector keeps it current:

1. claim generation g+1 in the pointer (one rebuild at a time); from then on the projector
   applies every event to the live generation *and* to g+1;
2. replay every event into g+1 through the same `projection.project` the projector uses;
3. catch up: apply the events committed during the replay that it did not see (compared by
   position, so a transaction that committed late with a low position is not missed);
4. switch the pointer from g to g+1 with a compare-and-set: readers move to the new model at
   their next query;
5. wait a grace period, for reads already under way on g to finish and for every follower of
   the pointer (`generations.Following`) to have read it again;
6. catch up once more, now into the live g+1: an event that a projector still holding the old
   pointer applied to g, and not to g+1 (a gap there), is applied here; then drop g.

Every write is version-checked, so the replay, the catch-ups and the projector can apply the
same event in any order and each lands once. Until step 4 the live generation is never
touched: a malformed event or a crash drops g+1 and leaves the live model as it was.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Callable, Iterable

from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.read import generations, poison, projection
from cqrs_demo.read.generations import ReadModel
from cqrs_demo.write.event_log import count_events, event_log, events_at, positions

__all__ = ["RebuildFailed", "RebuildInProgress", "count_events", "event_log", "rebuild"]  # count_events: the size of a rebuild

log = logging.getLogger(__name__)

GRACE_SECONDS = 2.0  # reads that resolved the old generation just before the switch finish on it
STALE_AFTER = timedelta(seconds=60)  # a rebuild silent this long died: another may take over
PROGRESS_EVERY = 100  # events between two progress reports in the pointer document
TRACE = {"rebuilt": True}

Progress = Callable[[int], None]


class RebuildFailed(Exception):
    """An event of the log could not be applied; the building generation was dropped."""

    def __init__(self, event: Event, reason: str, live: int) -> None:
        super().__init__(
            f"event at position {event.position} ({event.type} of {event.aggregate_type} {event.aggregate_id}, "
            f"id {event.event_id}) cannot be applied: {reason}; the live read model (generation {live}) is untouched")
        self.position = event.position
        self.reason = reason


class RebuildInProgress(Exception):
    """Another rebuild is building the next generation right now."""


def rebuild(engine, db, progress: Progress | None = None, grace_seconds: float = GRACE_SECONDS) -> dict[str, int]:
    """Rebuild the read model beside the live one and switch to it; counts of each outcome."""
    total = count_events(engine)
    claimed = _report("building", total)
    old, new = _claim(db, claimed)
    claimed["generation"] = new
    target = ReadModel(db, new)
    replay = _Replay(db, target, progress)
    try:
        target.drop()  # what a rebuild that died before us left
        projection.ensure_indexes(target)
        replay.apply_all(event_log(engine))
        replay.apply_all(events_at(engine, positions(engine) - replay.seen))
    except BaseException as exc:
        _abandon(db, target, old, {**claimed, "replayed": replay.replayed}, exc)
        raise
    finished = {**claimed, "state": "switched", "replayed": replay.replayed, "finished_at": generations.now()}
    if not generations.switch(db, old, new, finished):
        target.drop()
        raise RebuildInProgress(f"the live generation changed from {old} during the rebuild; generation {new} dropped")
    # Reads under way on the old generation finish, and every follower's pointer is renewed.
    time.sleep(max(grace_seconds, generations.REFRESH_SECONDS))
    replay.apply_all(events_at(engine, positions(engine) - replay.seen), after_switch=True)
    _settle_held_streams(target)
    ReadModel(db, old).drop()
    return replay.counts


class _Replay:
    """Applies events to the building generation, remembering what it saw and counting outcomes."""

    def __init__(self, db, target: ReadModel, progress: Progress | None) -> None:
        self.db, self.target, self.progress = db, target, progress
        self.seen: set[int] = set()
        self.counts: dict[str, int] = {}
        self.replayed = 0

    def apply_all(self, events: Iterable[Event], after_switch: bool = False) -> None:
        for event in events:
            try:
                outcome = projection.project(self.target, event, TRACE).value
            except MalformedEvent as exc:
                if not after_switch:
                    raise RebuildFailed(event, str(exc), self.target.generation - 1) from None
                # Live now: the projector meets the same event and sets it aside as poison.
                log.error("rebuild: event at position %s cannot be applied: %s", event.position, exc)
                outcome = "malformed"
            self.seen.add(event.position)
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            self.replayed += 1
            if self.progress:
                self.progress(1)
            if self.replayed % PROGRESS_EVERY == 0 and not after_switch:
                generations.report_progress(self.db, self.target.generation, self.replayed)


def _claim(db, report: dict) -> tuple[int, int]:
    current = generations.ensure_pointer(db)
    if current.building is not None and not _stale(db):
        raise RebuildInProgress(f"generation {current.building} is being built by another rebuild")
    new = current.live + 1
    if not generations.claim_building(db, current, {**report, "generation": new}):
        raise RebuildInProgress("another rebuild started at the same moment")
    return current.live, new


def _stale(db) -> bool:
    report = generations.raw(db)[projection.STATUS].find_one({"_id": generations.POINTER}).get("rebuild") or {}
    beat = report.get("heartbeat_at")
    if beat is None:
        return True
    if isinstance(beat, str):  # some MongoDB-compatible servers hand back datetimes as text
        beat = datetime.fromisoformat(beat)
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=generations.now().tzinfo)
    return generations.now() - beat > STALE_AFTER


def _report(state: str, total: int) -> dict:
    started = generations.now()
    return {"state": state, "started_at": started, "heartbeat_at": started,
            "replayed": 0, "total": total, "failed_position": None, "error": None}


def _abandon(db, target: ReadModel, live: int, claimed: dict, exc: BaseException) -> None:
    report = {**claimed, "generation": target.generation, "state": "failed", "finished_at": generations.now(),
              "failed_position": getattr(exc, "position", None), "error": (str(exc) or repr(exc))[:500]}
    generations.abandon(db, target.generation, report)
    target.drop()
    log.error("rebuild of generation %d abandoned, generation %d stays live: %s", target.generation, live, exc)


def _settle_held_streams(target: ReadModel) -> None:
    """Holds the replay made obsolete (the log had what they waited for) end as the projector would end them."""
    for key in poison.streams_to_settle(target):
        poison.settle(target, key, lambda event, headers: projection.project(target, event, TRACE))
