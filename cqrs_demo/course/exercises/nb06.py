"""Notebook 06, dual write vs the outbox: what the seed's design loses, and what acknowledging after the write buys.

06.1 (predict): how many events the seed's design loses when the broker is away for one second
of a burst; judged against this run's own count, within 20 %.
06.2 (break and fix): with the projector acknowledging on delivery, which anomaly a crash drill
shows (`cqrs_demo.lab.crash_drill`); then none with acknowledgement after the write.
"""

from __future__ import annotations

from dataclasses import replace
from numbers import Real
from typing import Any

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.predictions import anomaly_appears, number_within
from cqrs_demo.course.verdict import Verdict

NOTEBOOK = "06_dual_write_vs_outbox"

_within_a_fifth = number_within(relative=0.2, unit="events")


def check_events_lost(prediction: Any, observed: int) -> Verdict:
    """Within 20 % of this run's own count, with a hint aimed at the side the prediction missed on."""
    verdict = _within_a_fifth(prediction, observed)
    if verdict.passed or isinstance(prediction, bool) or not isinstance(prediction, Real):
        return verdict
    return replace(verdict, hint=_TOO_FEW_HINT if prediction < observed else _TOO_MANY_HINT)


_TOO_FEW_HINT = ("More than the outage's own second is lost. The projector applies version v of a product only on "
                 "top of v - 1: what becomes of the later updates of a product that missed one, when the projector "
                 "acknowledges on delivery and so never sees a message again?")
_TOO_MANY_HINT = ("Not every event is lost: the 20 products were created, and the first second of updates applied, "
                  "before the broker went away. About how many updates is that?")

LOST_IN_OUTAGE = Exercise(
    id="06.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="How many events does the seed's design lose?",
    goal="300 price updates of 20 products at 100 a second; one second in, the broker is unreachable for one second. "
         "Predict how many of the run's events the seed's design never applies to the read model.",
    checker=check_events_lost,
    hints=(
        "Start with the outage itself: about how many updates are committed while the broker is away, and does "
        "every one of the 20 products get at least one of them?",
        "The projector applies version v of a product only on top of v - 1. What happens to each later update of "
        "a product that missed one, when the projector acknowledges on delivery and never sees a message again?",
    ),
    wrong_answer=100,
    why="The updates committed while the broker was away were never delivered, and every product missed one of "
        "them; from then on each of its updates is a gap, refused, and (acknowledged on delivery) never retried. "
        "So nearly every update from the cut to the end of the burst is lost, about two thirds of the run, while "
        "every client was told 200 OK.",
)

ACK_ON_DELIVERY = Exercise(
    id="06.2",
    kind=Kind.BREAK_AND_FIX,
    notebook=NOTEBOOK,
    title="Acknowledging on delivery",
    goal="Set the projector to acknowledge messages on delivery instead of after the write, kill it as it takes a "
         "backlog, and predict which anomaly the counters show; then see none with acknowledgement after the write.",
    checker=anomaly_appears("events lost", "events applied twice", "events applied out of order"),
    hints=(
        "Once a message is acknowledged, RabbitMQ deletes it. When does that happen with acknowledgement on "
        "delivery, and where were the messages when the projector died?",
        "A second copy needs a redelivery. Who would redeliver a message that RabbitMQ already deleted?",
    ),
    wrong_answer="events applied twice",
    why="Acknowledged on delivery, every message the projector held was already deleted from the queue when it "
        "died: those changes are lost, and any later change of the same products would be refused as a gap and "
        "be gone too. Acknowledged after the write, the same messages go back to the queue and the next projector applies "
        "them: at least once, made harmless by the version check.",
)
