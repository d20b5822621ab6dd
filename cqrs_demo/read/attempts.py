"""How many times an event has been tried, counted in MongoDB where every projector sees it.

An event is dead-lettered after `poison_attempts` tries, however many projectors share the queue
and however the tries ended. A try ends one of three ways:
- *cleanly*: the event was applied, found a duplicate, parked, or kept back on purpose (a gap:
  its predecessor is not applied yet; see `kept_gaps`). A gap is not a failed try;
- *failed*: applying it raised (a payload that does not fit the contract);
- *uncleanly*: the process died, or lost its connection, with the event in hand. The broker
  then redelivers it, flagged `redelivered`.

So each event kept back as a gap gets a record here marked `open: false` when it is first
kept (it may go back to the queue later, or the projector holding it may die), and a
redelivery is judged by its record: none, or one still `open`, means the previous try ended
uncleanly, a *crash*. A redelivered event is `open` while it is being tried
again, so a crash during that try is seen the same way. A clean try sets `crashes` back to 0
(only consecutive crashes point at the event); `failures` only ever grow. The record is deleted
once the event is settled for good (applied, duplicate, parked or dead-lettered).

A crash cannot tell which event of a batch killed the process, so a redelivered event under
suspicion of a crash is tried *alone* (see `Projector`): the innocent ones in the batch then
complete cleanly and only the event that kills the process again accumulates crashes.

RabbitMQ's quorum queues count deliveries too (`x-delivery-limit`), but on RabbitMQ 3.10 every
requeue counts, gaps handed back included.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pymongo import DeleteOne, UpdateOne

ATTEMPTS = "delivery_attempts"


@dataclass(frozen=True)
class Judgement:
    """What a redelivery's record says: a crash preceded it or not, and the tries so far."""

    crashed: bool
    tries: int


def judge(db, event_ids: list[str]) -> dict[str, Judgement]:
    """Judge redelivered events, and record that a try of each begins now."""
    if not event_ids:
        return {}
    records = {doc["_id"]: doc for doc in db[ATTEMPTS].find({"_id": {"$in": event_ids}})}
    verdicts, writes = {}, []
    now = datetime.now(timezone.utc)
    for event_id in dict.fromkeys(event_ids):
        record = records.get(event_id)
        crashed = record is None or bool(record.get("open"))
        failures = (record or {}).get("failures", 0)
        crashes = (record or {}).get("crashes", 0) + (1 if crashed else 0)
        verdicts[event_id] = Judgement(crashed, failures + crashes)
        # A suspect is tried alone, later: it is open only from `begin`. The others are open now.
        writes.append(UpdateOne({"_id": event_id},
                                {"$set": {"crashes": crashes, "failures": failures, "open": not crashed, "at": now}},
                                upsert=True))
    db[ATTEMPTS].bulk_write(writes, ordered=False)
    return verdicts


def begin(db, event_ids: list[str]) -> None:
    """A try of each begins (a suspect's alone, or a kept gap's again): if the process dies now,
    the record says so."""
    if event_ids:
        db[ATTEMPTS].bulk_write([UpdateOne({"_id": e}, {"$set": {"open": True}}, upsert=True)
                                 for e in dict.fromkeys(event_ids)], ordered=False)


def handed_back(db, event_ids: list[str]) -> None:
    """These tries ended cleanly: the events wait for their predecessor, in hand or in the queue."""
    if event_ids:
        db[ATTEMPTS].bulk_write(
            [UpdateOne({"_id": e}, {"$set": {"open": False, "crashes": 0}}, upsert=True) for e in dict.fromkeys(event_ids)],
            ordered=False,
        )


def failed(db, event_id: str) -> int:
    """This try raised; the tries so far (failures and crashes)."""
    doc = db[ATTEMPTS].find_one_and_update(
        {"_id": event_id},
        {"$inc": {"failures": 1}, "$set": {"open": False, "crashes": 0}},
        upsert=True,
        return_document=True,
    )
    return int(doc.get("failures", 1))


def settled(db, event_ids: list[str]) -> None:
    """These events are done with for good: their records go."""
    if event_ids:
        db[ATTEMPTS].bulk_write([DeleteOne({"_id": e}) for e in dict.fromkeys(event_ids)], ordered=False)
