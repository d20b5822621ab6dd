"""Waiting for a condition that another process brings about: the one poll-until loop.

The stack's processes run on their own, so code that starts, breaks or loads them (the CLI, the
notebooks, the tests, the benchmarks) learns that something happened only by asking again. Every
such wait is bounded, and one that runs out says what it waited for and for how long, so a slow
machine gives a clear failure instead of a hang or a bare "timed out".
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """A condition did not hold within the time allowed for it."""

    def __init__(self, what: str, timeout: float) -> None:
        super().__init__(f"timed out after {timeout:g}s waiting for {what}")
        self.what = what
        self.timeout = timeout


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05,
               what: str = "the condition") -> T:
    """Call `predicate()` until it returns something truthy, and return that.

    It is always called at least once, and once more at the deadline, so a zero timeout means
    "check now". An exception from `predicate` ends the wait: that is how a caller stops
    waiting for a process that has already died. Raises `WaitTimeout` (a `TimeoutError`).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(what, timeout)
        time.sleep(min(interval, remaining))
