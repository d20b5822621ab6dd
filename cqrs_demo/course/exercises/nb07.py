"""Notebook 07, crashes, duplicates and poison: at-least-once delivery, and the check that makes it harmless.

07.1 (predict): the relay is killed between RabbitMQ's confirm and marking the outbox row; once
restarted it publishes the event again. What does the projector do with that second copy?
07.2 (break and fix): the projector's version check turned off (`projector_dedup=False`), an
order's events delivered twice: which anomaly appears; then the check back on, and none.
"""

from __future__ import annotations

from typing import Any, Mapping

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.predictions import anomaly_appears, one_of

NOTEBOOK = "07_crashes_duplicates_and_poison"

# -- 07.1 -----------------------------------------------------------------------------------

FATES = ("applied again", "skipped as a duplicate", "held back as a gap", "never delivered again")


def fate_of_the_second_copy(status: Mapping[str, Any]) -> str:
    """What the projector's counters (`GET /api/projection`) say it did with a second copy of the one
    event a fresh stack has committed."""
    if status.get("reapplied", 0) or status.get("applied", 0) > 1:
        return "applied again"
    if status.get("duplicates", 0):
        return "skipped as a duplicate"
    if status.get("gaps", 0):
        return "held back as a gap"
    return "never delivered again"


def deliveries_handled(status: Mapping[str, Any]) -> int:
    """Every delivery the projector has dealt with, whatever it did with it."""
    return sum(status.get(name, 0) for name in ("applied", "duplicates", "gaps", "reapplied", "overwrote_newer"))


SECOND_COPY = Exercise(
    id="07.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="The relay died before marking: what happens to the second copy?",
    goal="RabbitMQ confirmed the event and the projector applied it, but the relay died before marking its "
         "outbox row. Restarted, the relay publishes the row again. Predict what the projector does with "
         "that second copy.",
    checker=one_of(*FATES),
    hints=(
        "The restarted relay cannot tell whether an unmarked row reached RabbitMQ, so it publishes it again: "
        "the copy does arrive. What version does the copy carry, and what version is the document at?",
        "The projector applies version v only to a document at version v − 1 (notebook 03). The document is "
        "already at version 1, and the copy is version 1 again.",
    ),
    wrong_answer="applied again",
    why="The outbox gives at-least-once delivery: a row not marked is published again. The projector's version "
        "check turns the second copy into a duplicate, acknowledged and dropped: delivered twice, applied once.",
)

# -- 07.2 -----------------------------------------------------------------------------------

ANOMALIES = ("events lost", "events applied twice", "events applied out of order")

WITHOUT_THE_VERSION_CHECK = Exercise(
    id="07.2",
    kind=Kind.BREAK_AND_FIX,
    notebook=NOTEBOOK,
    title="Without the version check",
    goal="Turn the projector's version check off, deliver an order's three events a second time, and predict "
         "which anomaly the counters show; then turn it back on and see them stay at zero.",
    checker=anomaly_appears(*ANOMALIES),
    hints=(
        "Nothing is dropped on the way: each event arrives twice. What does a projector that no longer compares "
        "versions do with an event it has already applied?",
        "A stock change carries the units sold as an increment (`$inc`): applied a second time, the sale counts "
        "twice. Which counter counts an event applied more than once?",
    ),
    wrong_answer="events lost",
    why="Without the version check a redelivered event is applied again: nothing is lost and nothing overtakes, "
        "but every increment counts twice. With it, the copy is a duplicate and changes nothing.",
)
