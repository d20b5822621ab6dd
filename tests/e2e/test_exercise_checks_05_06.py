"""The checks of notebooks 05 and 06 that drive a running stack (05.2, and 06.2's crash drill), on real ones.

05.2 is judged with its solution (it must pass every scenario), with the stub of the student's
edition (not answered), and with the classic mistakes: each must fail at the scenario that exposes
it, with a message that names what happened, and leave the projector running. 06.2's drill runs
on a stack that acknowledges on delivery and on one that acknowledges after the write; the check
passes on what the two showed only with the anomaly predicted.
"""

from __future__ import annotations

import time

import pytest

from cqrs_demo.course import exercise
from cqrs_demo.lab.crash_drill import crash_drill
from cqrs_demo.runtime import health

from lab_fixtures import LabStacks, assert_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stacks(base_settings, tmp_path_factory):
    stacks = LabStacks(base_settings, tmp_path_factory.mktemp("exercise-checks-05-06"))
    try:
        yield stacks
    finally:
        stacks.teardown()


@pytest.fixture(scope="module")
def stack(stacks):
    """A stack that acknowledges after the write, as every stack does by default."""
    return stacks.start(read_wait_seconds=2.0)


@pytest.fixture
def consistent_afterwards(stack):
    """Whatever a check did, the stack it leaves behind runs and catches up."""
    yield
    assert health.projector_consumers(stack.observer_settings) == 1, "the projector runs again"
    assert_caught_up(stack)


# -- 05.2: read your own writes -------------------------------------------------------------------


def backing_off(client, product_id, version, budget=10.0):
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        answer = client.product(product_id, min_version=version)
        if answer.status != 503:
            return answer
        delay = max(2 * delay, float(answer.headers["Retry-After"]))
        if time.monotonic() + delay > deadline:
            return answer
        time.sleep(delay)


def asks_once(client, product_id, version, budget=10.0):
    return client.product(product_id, min_version=version)


def without_a_budget(client, product_id, version, budget=10.0):
    while True:
        answer = client.product(product_id, min_version=version)
        if answer.status != 503:
            return answer
        time.sleep(float(answer.headers["Retry-After"]))


def stub(client, product_id, version, budget=10.0):
    """Not written yet."""
    ...


def judge(answer, stack):
    return exercise("05.2").judge(answer, stack=stack)


def test_05_2_passes_on_retries_that_honour_retry_after_within_a_budget(stack, consistent_afterwards):
    verdict = judge(backing_off, stack)
    assert verdict.passed, verdict
    assert [row.ok for row in verdict.rows] == [True, True, True]
    assert "503 after 2 request(s)" in verdict.rows[0].answer, "one retry fits in the budget of 4 s"
    assert verdict.rows[2].answer.startswith("404 after 1 request(s)")


def test_05_2_retrying_at_once_fails_where_the_first_503_came(stack, consistent_afterwards):
    verdict = judge(exercise("05.2").wrong_answer, stack)
    assert not verdict.passed and len(verdict.rows) == 1
    assert "the read model stays behind" in verdict.answer
    assert "after a 503 whose Retry-After said 1 s" in verdict.answer
    assert "Retry-After" in verdict.hint


def test_05_2_one_request_only_gives_up_while_the_read_model_catches_up(stack, consistent_afterwards):
    verdict = judge(asks_once, stack)
    assert not verdict.passed and [row.ok for row in verdict.rows] == [True, False]
    assert "gave up with a 503 after 1 request(s)" in verdict.answer


def test_05_2_no_budget_is_caught_and_the_check_still_ends(stack, consistent_afterwards):
    started = time.monotonic()
    verdict = judge(without_a_budget, stack)
    assert not verdict.passed and len(verdict.rows) == 1
    assert "still asking" in verdict.answer and "with a budget of 4 s" in verdict.answer
    assert time.monotonic() - started < 30, "the check let the read model catch up, and the function returned"


def test_05_2_stub_is_not_answered(stack):
    verdict = judge(stub, stack)
    assert not verdict.passed and not verdict.answered


# -- 06.2: acknowledging on delivery ---------------------------------------------------------------


def test_06_2_the_crash_drill_loses_events_only_with_acks_on_delivery(stacks, stack, consistent_afterwards):
    acks_on_delivery = stacks.start(projector_ack="auto")
    broken = crash_drill(acks_on_delivery)
    fixed = crash_drill(stack)
    assert broken["events committed"] == fixed["events committed"] == 20
    assert broken["events lost"] >= 1, "the killed projector's messages were acknowledged, so gone"
    assert fixed == {**fixed, "events lost": 0, "events applied twice": 0, "events applied out of order": 0}
    assert exercise("06.2").judge("events lost", broken=broken, fixed=fixed).passed
    assert not exercise("06.2").judge(exercise("06.2").wrong_answer, broken=broken, fixed=fixed).passed
