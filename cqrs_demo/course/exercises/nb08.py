"""Notebook 08, performance: how long a backlog takes to drain, and the setting that makes it fast.

Both run on notebook 08's own stack, whose projector reaches RabbitMQ over a slowed link while it
catches up (`cqrs_demo.lab.catchup`), so the rates are set by the round trip and hold on a busy
machine.

08.1 (predict): the catch-up time of a backlog while new events keep arriving,
backlog ÷ (processing rate − arrival rate), against the one measured.
08.2 (modify): the projector's prefetch window, chosen so that a backlog of 1,000 events drains
within 10 seconds while at most 250 messages are unacknowledged at once.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.predictions import number_within
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.lab.catchup import catch_up

NOTEBOOK = "08_performance"

CATCH_UP_TIME = Exercise(
    id="08.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="How long does a backlog take to drain while events keep arriving?",
    goal="The projector was down; a backlog waits in its queue, and new events keep arriving while it works "
         "through it. From the processing rate measured above, predict how many seconds it takes to catch up.",
    checker=number_within(relative=0.35, unit="s"),
    hints=(
        "Each second the projector applies `processing_per_s` events, but `arrival_per_s` new ones join the "
        "queue: by how many events does the queue shrink per second?",
        "The backlog shrinks at the processing rate minus the arrival rate; divide the backlog by that.",
    ),
    wrong_answer=30 / 10,  # the backlog over the processing rate, as if nothing arrived meanwhile
    why="Only the difference between the two rates drains a backlog: with arrivals at half the processing rate "
        "it takes twice as long as the processing rate alone suggests, and as the arrival rate nears the "
        "processing rate the catch-up time grows without bound.",
)

# -- 08.2 -----------------------------------------------------------------------------------

BACKLOG = 1000
DEADLINE_S = 10.0
UNACKED_BOUND = 250
RESTORED_PREFETCH = 500  # the default: what the projector runs with again after the check


def check_prefetch(projector_prefetch: Any, stack) -> Verdict:
    """Resume the projector with the student's prefetch on a backlog of 1,000, judge the drain; restore.

    RabbitMQ never lets a consumer hold more unacknowledged messages than its prefetch count, so
    the bound is judged on the setting; the drain is measured on the live stack.
    """
    if isinstance(projector_prefetch, bool) or not isinstance(projector_prefetch, Integral):
        return Verdict(False, repr(projector_prefetch), "a whole number of messages",
                       hint="Give a whole number, such as 10 (no quotes).")
    prefetch = int(projector_prefetch)
    bound = Row("messages unacknowledged at once, at most", f"{prefetch}", f"≤ {UNACKED_BOUND}",
                1 <= prefetch <= UNACKED_BOUND)
    if prefetch < 1:
        return Verdict(False, f"prefetch {prefetch}", "a prefetch of at least 1", rows=(bound,),
                       hint="A prefetch of 0 means no limit at all in RabbitMQ; give at least 1.")
    if not bound.ok:
        return Verdict(False, f"prefetch {prefetch}: up to {prefetch} messages held unacknowledged",
                       f"at most {UNACKED_BOUND}", rows=(bound,),
                       hint="Every unacknowledged message sits in the projector's memory and is delivered again if "
                            "it dies: a larger window buys little once each batch is large. Stay within the bound.")
    try:
        drained = catch_up(stack, BACKLOG, timeout=DEADLINE_S, projector_prefetch=prefetch)
    finally:
        stack.restart("projector", projector_prefetch=RESTORED_PREFETCH)
    fast = Row(f"a backlog of {BACKLOG:,} drained", _drained(drained), f"within {DEADLINE_S:g} s",
               drained.caught_up)
    if not fast.ok:
        return Verdict(False, f"prefetch {prefetch}: {_drained(drained)}", f"the backlog drained within {DEADLINE_S:g} s",
                       rows=(bound, fast), hint=_SLOW_HINT)
    return Verdict(True, f"prefetch {prefetch}: {_drained(drained)}",
                   f"within {DEADLINE_S:g} s, with at most {UNACKED_BOUND} messages unacknowledged",
                   rows=(bound, fast))


def _drained(drained) -> str:
    rate = f"{drained.processing_per_s:,.0f} events/s"
    if drained.caught_up:
        return f"caught up in {drained.seconds:.1f} s ({rate})"
    return f"{drained.applied:,} of {drained.backlog:,} events applied after {drained.seconds:.0f} s ({rate})"


_SLOW_HINT = ("With a small window the projector waits a whole round trip to RabbitMQ for each few messages. "
              "How many messages per round trip does it need to apply 1,000 in a few seconds?")

PREFETCH_WINDOW = Exercise(
    id="08.2",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="A prefetch window for a fast, bounded catch-up",
    goal=f"Choose the projector's prefetch window (`projector_prefetch`) so that a backlog of {BACKLOG:,} events "
         f"drains within {DEADLINE_S:g} seconds over the slowed link, with at most {UNACKED_BOUND} messages "
         "unacknowledged at once. The check restarts the projector with it and measures.",
    checker=check_prefetch,
    hints=(
        "The prefetch window is how many messages RabbitMQ sends the projector before it has to wait for "
        "acknowledgements; with 1, every message costs a round trip.",
        "At about 10 round trips a second, 1,000 events in 10 seconds need at least 10 messages per round trip; "
        "leave room for a busy machine.",
    ),
    wrong_answer=10_000,  # as large as can be: fast, but a crash then redelivers the whole backlog
    why="The projector applies what it holds in one batch of bulk writes and acknowledges it together: the window "
        "sets how much work each round trip to the broker carries. Past a few hundred, a larger window adds "
        "memory and redelivered work after a crash, not speed.",
)
