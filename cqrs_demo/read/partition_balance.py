"""Spreading partitions over the projectors that run, on top of single active consumer.

Every projector subscribes to every partition queue, so each queue always has standbys and the
broker hands it to one of them the moment its active consumer dies: that is the takeover, and
it needs nothing from here. But the broker makes active whoever subscribed *first*, so the first
projector started would keep every partition and the others would only wait. So projectors also
announce themselves (`projector_members`: an id and a heartbeat each tick) and agree, from the
same list, which partitions each should hold: partition k goes to the live member of rank
`k % members`. A projector that finds itself active on a partition that is not its own gives it
up: it cancels its subscription and subscribes again, which puts it at the back of that queue's
line and makes the next standby active. It gives a partition up at most once per change of the
member list, so a list that is briefly stale (a killed member not yet expired) cannot make a
partition bounce between projectors.

Balance is only about throughput: two projectors active on one partition cannot happen (the
broker never has two active consumers on a queue), and a projector that holds a partition it
should not simply applies it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid

MEMBERS = "projector_members"
MEMBER_TTL_SECONDS = 2.0  # a member silent this long is gone: four missed ticks


def new_consumer_id() -> str:
    """Who a projector is, for people reading the status: host, pid, and a suffix for uniqueness."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:4]}"


def assignment(members: list[str], me: str, partitions: int) -> set[int]:
    """The partitions `me` should hold among `members` (every live member, `me` included)."""
    ranked = sorted(set(members) | {me})
    rank = ranked.index(me)
    return {k for k in range(partitions) if k % len(ranked) == rank}


class PartitionBalance:
    def __init__(self, db, consumer_id: str, partitions: int) -> None:
        self.db = db
        self.me = consumer_id
        self.partitions = partitions
        self.members: tuple[str, ...] = (consumer_id,)
        self._given_up: dict[int, tuple[str, ...]] = {}

    def heartbeat(self) -> None:
        """Announce this projector and read who else is live."""
        now = time.time()  # seconds since the epoch: compared as numbers by any MongoDB
        self.db[MEMBERS].update_one({"_id": self.me}, {"$set": {"seen_at": now}}, upsert=True)
        self.members = tuple(sorted(live_members(self.db, now) | {self.me}))

    def own(self) -> set[int]:
        """The partitions this projector should hold among the members it last saw."""
        return assignment(list(self.members), self.me, self.partitions)

    def to_give_up(self, active: set[int], crowded: set[int]) -> set[int]:
        """Of the partitions this projector is active on, those to hand to the next in line:
        not its own, with another consumer waiting (`crowded`), not given up under this member list."""
        own = self.own()
        give = {k for k in active - own if k in crowded and self._given_up.get(k) != self.members}
        for k in give:
            self._given_up[k] = self.members
        return give

    def leave(self) -> None:
        self.db[MEMBERS].delete_one({"_id": self.me})


def live_members(db, now: float | None = None) -> set[str]:
    since = (now or time.time()) - MEMBER_TTL_SECONDS
    return {doc["_id"] for doc in db[MEMBERS].find({"seen_at": {"$gt": since}}, {"_id": 1})}
