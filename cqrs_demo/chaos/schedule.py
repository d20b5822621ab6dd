"""The fault schedule of a chaos run: every kind of fault, at seeded random times, spaced out.

The same seed gives the same schedule, so a failing run can be run again as it was. Every kind
appears at least once, however short the run; the rest of the run is filled with kinds drawn at
random. Faults follow one another (one slot each, never overlapping): a fault is given the time
to take effect and be recovered from before the next one starts, so that when the verdict fails,
the schedule says which fault was running.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

BROKER_OUTAGE = "broker outage"
KILL_RELAY = "relay killed at its failpoint"
KILL_PROJECTOR = "projector killed at its failpoint"
RESTART_MONGO = "MongoDB restarted"
REDELIVER = "duplicates redelivered"
SECOND_PROJECTOR = "second projector"
STANDBY_RELAY = "standby relay takes over"
POISON = "poison event injected and replayed"
KINDS = (BROKER_OUTAGE, KILL_RELAY, KILL_PROJECTOR, RESTART_MONGO, REDELIVER, SECOND_PROJECTOR, STANDBY_RELAY, POISON)

# How long a fault that lasts holds (an outage, an extra process), at most; shorter slots shorten it.
LONGEST_HOLD = {BROKER_OUTAGE: 4.0, SECOND_PROJECTOR: 12.0, STANDBY_RELAY: 10.0, POISON: 6.0}
SLOT_SECONDS = 8.0  # a fault every 8 s on average: time to take effect and to recover
FIRST_AT = 2.0  # the load gets going before the first fault


@dataclass(frozen=True)
class Fault:
    kind: str
    at: float  # seconds after the load started
    hold: float  # how long it lasts, for the kinds that last; 0 for the others
    size: int  # how many duplicates, for REDELIVER; 0 for the others


def plan(seconds: float, seed: int) -> list[Fault]:
    """The faults of a run of `seconds`, in order; every kind at least once."""
    rng = random.Random(seed)
    usable = max(seconds - FIRST_AT, 1.0)
    count = max(len(KINDS), int(usable // SLOT_SECONDS))
    kinds = list(KINDS)
    rng.shuffle(kinds)
    kinds += [rng.choice(KINDS) for _ in range(count - len(KINDS))]
    slot = usable / count
    faults = []
    for number, kind in enumerate(kinds):
        at = FIRST_AT + number * slot + rng.uniform(0, 0.25 * slot)
        hold = 0.0
        if kind in LONGEST_HOLD:
            hold = round(min(LONGEST_HOLD[kind], 0.5 * slot) * rng.uniform(0.6, 1.0), 2)
        size = rng.randint(3, 20) if kind == REDELIVER else 0
        faults.append(Fault(kind, round(at, 2), hold, size))
    return faults
