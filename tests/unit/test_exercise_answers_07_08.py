"""How the checks of notebooks 07 and 08 read an answer, without a stack: no I/O.

The observations come from the live stack in the notebooks themselves (run under nbval, where each
passing check also rehearses its wrong answer); here they are written out, one case per mistake.
"""

from __future__ import annotations

import pytest

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises.nb07 import ANOMALIES, deliveries_handled, fate_of_the_second_copy

COUNTERS = {"applied": 0, "duplicates": 0, "gaps": 0, "reapplied": 0, "overwrote_newer": 0}


@pytest.mark.parametrize("seen, fate", [
    ({"applied": 1, "duplicates": 1}, "skipped as a duplicate"),
    ({"applied": 2}, "applied again"),
    ({"applied": 1, "reapplied": 1}, "applied again"),
    ({"applied": 1, "gaps": 1}, "held back as a gap"),
    ({"applied": 1}, "never delivered again"),
])
def test_07_1_reads_the_fate_of_the_second_copy_from_the_projectors_counters(seen, fate):
    status = {**COUNTERS, **seen}
    assert fate_of_the_second_copy(status) == fate
    assert deliveries_handled(status) == sum(seen.values())


def test_07_1_passes_on_the_duplicate_and_fails_on_its_wrong_answer():
    observed = fate_of_the_second_copy({**COUNTERS, "applied": 1, "duplicates": 1})
    assert exercise("07.1").judge("Skipped as a duplicate ", observed=observed).passed
    assert not exercise("07.1").judge(exercise("07.1").wrong_answer, observed=observed).passed
    verdict = exercise("07.1").judge("duplicate", observed=observed)
    assert not verdict.passed and "skipped as a duplicate" in verdict.hint


def anomalies(**raised) -> dict[str, int]:
    return {name: raised.get(name.replace(" ", "_"), 0) for name in ANOMALIES} | {"events committed": 5}


@pytest.mark.parametrize("prediction, broken, fixed, passed", [
    ("events applied twice", anomalies(events_applied_twice=3), anomalies(), True),
    ("events lost", anomalies(events_applied_twice=3), anomalies(), False),
    ("none", anomalies(events_applied_twice=3), anomalies(), False),
    # right about the broken run, but the guarantee is not really back on
    ("events applied twice", anomalies(events_applied_twice=3), anomalies(events_applied_twice=1), False),
])
def test_07_2_needs_the_anomaly_predicted_and_none_once_fixed(prediction, broken, fixed, passed):
    verdict = exercise("07.2").judge(prediction, broken=broken, fixed=fixed)
    assert verdict.passed is passed, verdict
    assert [row.item for row in verdict.rows] == ["guarantee off", "guarantee back on"]


def repaired_price(text):
    """The student's edition: the body is the stub."""
    ...


def test_07_stub_is_not_answered():
    assert not exercise("07.1").judge(..., observed="skipped as a duplicate").answered
    assert not exercise("07.2").judge(..., broken=anomalies(), fixed=anomalies()).answered
    assert not exercise("07.3").judge(repaired_price, stack=None, poison=None).answered  # before touching a stack


@pytest.mark.parametrize("prediction, passed", [(6.0, True), (4.0, True), (3.0, False), (9.0, False), ("6", False)])
def test_08_1_counts_a_prediction_within_35_percent(prediction, passed):
    assert exercise("08.1").judge(prediction, observed=6.0).passed is passed


def test_08_1_wrong_answer_fails_at_any_rate_the_slowed_link_allows():
    """At 40 ms each way a projector with a prefetch of 1 applies at most 12.5 events/s, so a backlog
    of 30 with arrivals at half that rate takes at least 30 / 6.25 = 4.8 s."""
    assert not exercise("08.1").judge(exercise("08.1").wrong_answer, observed=30 / 6.25).passed


@pytest.mark.parametrize("answer, says", [
    (0, "at least 1"), (10_000, "at most 250"), ("100", "a whole number"), (True, "a whole number"),
])
def test_08_2_refuses_a_window_without_running_anything(answer, says):
    verdict = exercise("08.2").judge(answer, stack=None)  # no stack: it must not get that far
    assert not verdict.passed and says in verdict.observed + verdict.hint


def test_08_2_wrong_answer_is_refused_on_the_bound():
    assert "at most 250" in exercise("08.2").judge(exercise("08.2").wrong_answer, stack=None).observed
