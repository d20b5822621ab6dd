"""How the checks of notebooks 05 and 06 read an answer, against recorded observations: no I/O.

The recorded requests are what a read-your-write function sends (timestamps as the client takes
them); the recorded counters are those of a run of notebook 06 (the seed's design lost 205 of
320 events) and of the crash drill (20 changes lost with acks on delivery, none after the write).
The checks that drive a stack run on a real one in tests/e2e/test_exercise_checks_05_06.py.
"""

from __future__ import annotations

import pytest
from requests.structures import CaseInsensitiveDict

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises.nb05 import _problem
from cqrs_demo.course.exercises.read_retries import GIVE_UP_BUDGET, WAIT_BUDGET, Call
from cqrs_demo.course.student_code import Ran
from cqrs_demo.lab.client import Exchange
from cqrs_demo.lab.reads import read_outcome, read_outcomes

WAIT = 2.0  # the query service's longest `min_version` wait (read_wait_seconds)


def answer(status: int, sent_at: float, took: float = WAIT, version: int | None = None) -> Exchange:
    """A query service answer as the workbench client records it."""
    if status == 503:
        body = {"error": "read_model_behind", "details": {"read_model_version": 2, "min_version": 3}}
        headers = {"Retry-After": "1"}
    elif status == 404:
        body, headers = {"error": "not_found"}, {}
    else:
        body, headers = {"id": 7, "version": version}, {}
    return Exchange("GET", "http://query/api/products/7", None, status, body, CaseInsensitiveDict(headers),
                    took * 1000, sent_at)


LAST = object()  # the function returned the last answer it got


def call(scenario: str, requests: list[Exchange], returned=LAST, resumed_at=None, error=None) -> Call:
    ran = Ran(error=error) if error else Ran(result=requests[-1] if returned is LAST else returned)
    budget = WAIT_BUDGET if scenario == "catches up" else GIVE_UP_BUDGET
    seconds = requests[-1].sent_at + requests[-1].elapsed_ms / 1000 if requests else 0.0
    return Call(scenario, 7, 3, budget, ran, requests, seconds, resumed_at)


# -- 05.1 ------------------------------------------------------------------------------------

TWO_READS = {"plain GET": "200 old", "GET with min_version": "503"}


@pytest.mark.parametrize("prediction, passed", [
    (["200 old", "503"], True), (["200 OLD ", 503], True), (["200 new", "200 new"], False),
    (["200 old", "404"], False), (["stale", "503"], False),
])
def test_05_1_takes_one_outcome_per_read(prediction, passed):
    assert exercise("05.1").judge(prediction, observed=TWO_READS).passed is passed


def test_05_1_its_wrong_answer_fails_on_both_reads():
    verdict = exercise("05.1").judge(exercise("05.1").wrong_answer, observed=TWO_READS)
    assert [row.ok for row in verdict.rows] == [False, False]


def test_read_outcomes_name_each_answer_against_the_written_version():
    reads = {"fresh": answer(200, 0, version=3), "newer": answer(200, 0, version=4), "stale": answer(200, 0, version=2),
             "behind": answer(503, 0), "gone": answer(404, 0)}
    assert {name: read_outcome(got, 3) for name, got in reads.items()} == \
        {"fresh": "200 new", "newer": "200 new", "stale": "200 old", "behind": "503", "gone": "404"}
    table = read_outcomes(reads, 3)
    assert table.loc["behind", "Retry-After"] == "1" and table.loc["stale", "version shown"] == 2
    assert table.loc["behind", "answered after (ms)"] == 2000


# -- 05.2 ------------------------------------------------------------------------------------


def test_05_2_a_retry_exactly_at_retry_after_honours_it():
    gave_up = call("behind", [answer(503, 0), answer(503, 3.0)])
    assert gave_up.early_retry() is None and _problem(gave_up, WAIT) is None
    caught_up = call("catches up", [answer(503, 0), answer(503, 3.05), answer(200, 6.1, took=0.5, version=3)])
    assert _problem(caught_up, WAIT) is None
    assert _problem(call("deleted", [answer(404, 0, took=0.01)]), WAIT) is None


def test_05_2_asking_again_before_retry_after_is_named_with_its_numbers():
    hammering = call("behind", [answer(503, 0), answer(503, 2.0)])
    what, hint = _problem(hammering, WAIT)
    assert "asked again 0.00 s after a 503 whose Retry-After said 1 s" in what
    assert "Retry-After" in hint and "back-off" in hint


def test_05_2_a_budget_ignored_is_reported_even_when_the_answer_came_in_the_end():
    endless = call("behind", [answer(503, 0), answer(503, 3), answer(503, 6), answer(200, 9, version=3)],
                   resumed_at=9.0)
    what, hint = _problem(endless, WAIT)
    assert "still asking 9.0 s after it was called, with a budget of 4 s" in what and "time.monotonic()" in hint
    late = call("behind", [answer(503, 0), answer(503, 3), answer(503, 6)])
    assert "past its budget" in _problem(late, WAIT)[0]


def test_05_2_giving_up_while_the_read_model_catches_up_needs_a_retry():
    what, hint = _problem(call("catches up", [answer(503, 0)]), WAIT)
    assert "gave up with a 503 after 1 request(s)" in what and "ask again" in hint


def test_05_2_a_404_asked_again_is_named():
    what, hint = _problem(call("deleted", [answer(404, 0, took=0.01), answer(404, 1.1, took=0.01)]), WAIT)
    assert "returned 404 after 2 requests" in what and "Return it at once" in hint


@pytest.mark.parametrize("made, says", [
    (call("catches up", [answer(200, 0, version=3)], returned={"version": 3}), "not the query service's answer"),
    (call("catches up", [answer(200, 0, version=3)], returned=None), "not the query service's answer"),
    (call("catches up", [], returned=None), "sent no request through `client`"),
    (call("catches up", [answer(503, 0)], error="KeyError: 'retry-after' at `x`"), "raised KeyError"),
    (Call("behind", 7, 3, GIVE_UP_BUDGET, None, [answer(503, 0)], 40.0, 9.0), "had not returned 40 s after"),
])
def test_05_2_says_what_shape_is_wrong(made, says):
    assert says in _problem(made, WAIT)[0]


# -- 06.1 and 06.2 ---------------------------------------------------------------------------


@pytest.mark.parametrize("prediction, passed", [(200, True), (205, True), (245, True), (160, False), (100, False),
                                                ("200", False)])
def test_06_1_counts_within_a_fifth_of_the_runs_own_losses(prediction, passed):
    assert exercise("06.1").judge(prediction, observed=205).passed is passed


def test_06_1_its_wrong_answer_fails_on_a_slower_machine_too():
    assert not exercise("06.1").judge(exercise("06.1").wrong_answer, observed=260).passed


def test_06_1_the_hint_points_past_the_outage_or_before_the_cut():
    assert "later updates of a product that missed one" in exercise("06.1").judge(100, observed=205).hint
    assert "before the broker went away" in exercise("06.1").judge(320, observed=205).hint
    assert exercise("06.1").judge("many", observed=205).hint == "Give a number (no quotes, no unit)."


DRILL_OFF = {"events committed": 20, "events lost": 20, "events applied twice": 0, "events applied out of order": 0}
DRILL_ON = {"events committed": 20, "events lost": 0, "events applied twice": 0, "events applied out of order": 0}


def test_06_2_needs_the_loss_predicted_and_none_left_with_the_guarantee_back():
    assert exercise("06.2").judge("events lost", broken=DRILL_OFF, fixed=DRILL_ON).passed
    assert not exercise("06.2").judge(exercise("06.2").wrong_answer, broken=DRILL_OFF, fixed=DRILL_ON).passed
    verdict = exercise("06.2").judge("events lost", broken=DRILL_OFF, fixed={**DRILL_ON, "events lost": 3})
    assert not verdict.passed and [row.ok for row in verdict.rows] == [True, False]
