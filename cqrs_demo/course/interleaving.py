"""A second writer let in at the worst moment: between the code's read and its write.

A check-then-act bug (read the version, decide in Python, write unconditionally) passes every
test run one call at a time, and loses updates only when another process writes in between,
which in a live system happens by luck. `Interleaved` makes that luck certain: it wraps a
MongoDB collection and runs `intrude()` once, right after the first read the code makes, or
right before its first write if it reads nothing. Code whose check is part of its write (one
conditional `update_one`) is unaffected; code that checks, then acts, is caught every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo.collection import Collection

READS = frozenset({"find_one", "find", "count_documents", "estimated_document_count", "distinct", "aggregate"})


class Interleaved:
    def __init__(self, collection: Collection, intrude: Callable[[], None]) -> None:
        self._collection = collection
        self._intrude = intrude
        self.intruded = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if self.intruded or not callable(attribute):
            return attribute
        if name in READS:
            def read(*args: Any, **kwargs: Any) -> Any:
                result = attribute(*args, **kwargs)
                if name in ("find", "aggregate"):
                    result = iter(list(result))  # a cursor reads when iterated: read now, before the intrusion
                self._let_in()
                return result
            return read

        def write(*args: Any, **kwargs: Any) -> Any:
            self._let_in()
            return attribute(*args, **kwargs)
        return write

    def _let_in(self) -> None:
        if not self.intruded:
            self.intruded = True
            self._intrude()
