"""The check of exercise 08.2, which drives a running stack, on a real one.

It restarts the projector with the student's prefetch window, drains a backlog of 1,000 events
over a slowed link and restores the default window. Judged with the solution (it must pass) and
with a window of 1 (it must fail on time, saying how far it got); both times the stack must be
left running, at full speed and caught up. (The declared wrong answer, a window far past the bound,
fails before anything runs: tests/unit/test_exercise_answers_07_08.py.) (The checks of 07.1, 07.2 and
08.1 compare what the notebook measured: tests/unit/test_exercise_answers_07_08.py, and the
notebooks themselves under nbval.)
"""

from __future__ import annotations

import pytest

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises.nb08 import RESTORED_PREFETCH

from lab_fixtures import LabStacks, assert_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(base_settings, tmp_path_factory):
    stacks = LabStacks(base_settings, tmp_path_factory.mktemp("exercise-checks-08"))
    try:
        yield stacks.start()
    finally:
        stacks.teardown()


@pytest.fixture(autouse=True)
def consistent_afterwards(stack):
    yield
    assert stack.settings.projector_prefetch == RESTORED_PREFETCH
    assert not stack.broker_link.is_cut and stack.broker_link.delay == 0
    assert_caught_up(stack, timeout=60)


def test_08_2_passes_with_a_window_of_a_hundred(stack):
    verdict = exercise("08.2").judge(100, stack=stack)
    assert verdict.passed, verdict
    assert [row.ok for row in verdict.rows] == [True, True]
    assert "caught up in" in verdict.answer


def test_08_2_a_window_of_one_fails_on_time_and_says_how_far_it_got(stack):
    verdict = exercise("08.2").judge(1, stack=stack)
    assert not verdict.passed
    assert [row.ok for row in verdict.rows] == [True, False]
    assert "events applied after 10 s" in verdict.answer, verdict.answer
    assert "round trip" in verdict.hint
