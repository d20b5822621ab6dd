"""Exponential back-off for reconnect loops: quick first retries, capped waits during an outage."""

from __future__ import annotations


class Backoff:
    def __init__(self, first: float = 0.2, factor: float = 2.0, cap: float = 5.0) -> None:
        self.first, self.factor, self.cap = first, factor, cap
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first
