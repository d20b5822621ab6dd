"""The one poll-until loop, on a fake clock: what it returns, how often it asks, when it gives up."""

from __future__ import annotations

import threading
import time

import pytest

from cqrs_demo import polling
from cqrs_demo.polling import WaitTimeout, wait_until


class FakeClock:
    """`time.monotonic` and `time.sleep` for the polling module: sleeping moves the clock.

    Patching `time` reaches every thread of the process, and threads other tests leave behind (client
    monitors, watchers) keep sleeping; they get the real clock, so only this test's waits are counted.
    """

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self._owner = threading.get_ident()
        self._real_monotonic = time.monotonic
        self._real_sleep = time.sleep

    def monotonic(self) -> float:
        if threading.get_ident() != self._owner:
            return self._real_monotonic()
        return self.now

    def sleep(self, seconds: float) -> None:
        if threading.get_ident() != self._owner:
            return self._real_sleep(seconds)
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(polling.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(polling.time, "sleep", fake.sleep)
    return fake


def answers(*values):
    """A predicate that returns `values` one call at a time, and counts its calls."""
    remaining = list(values)

    def predicate():
        predicate.calls += 1
        return remaining.pop(0)

    predicate.calls = 0
    return predicate


def test_returns_the_first_truthy_value_without_sleeping_after_it(clock):
    predicate = answers(None, 0, {"applied": 3})
    assert wait_until(predicate, timeout=5, interval=0.5) == {"applied": 3}
    assert predicate.calls == 3 and clock.sleeps == [0.5, 0.5]


def test_a_zero_timeout_still_checks_once(clock):
    assert wait_until(answers("now"), timeout=0) == "now"
    with pytest.raises(WaitTimeout):
        wait_until(answers(False), timeout=0)
    assert clock.sleeps == []


def test_gives_up_at_the_deadline_saying_what_it_waited_for(clock):
    predicate = answers(*[False] * 100)
    with pytest.raises(WaitTimeout) as raised:
        wait_until(predicate, timeout=1, interval=0.375, what="the projector to catch up")
    assert isinstance(raised.value, TimeoutError)
    assert str(raised.value) == "timed out after 1s waiting for the projector to catch up"
    assert (raised.value.what, raised.value.timeout) == ("the projector to catch up", 1)
    # Never sleeps past the deadline, and asks once more when it is reached.
    assert clock.sleeps == [0.375, 0.375, 0.25]
    assert predicate.calls == 4


def test_an_error_in_the_predicate_ends_the_wait(clock):
    def process_died():
        raise RuntimeError("relay exited")

    with pytest.raises(RuntimeError, match="relay exited"):
        wait_until(process_died, timeout=10)
    assert clock.sleeps == []
