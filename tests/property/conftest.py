"""Fixtures for the generated-request tests: a short read wait, and a count of generated cases.

`settings` is narrowed here (not in tests/conftest.py) so that a generated `min_version` the
read model never reaches costs a quarter of a second, not two: the 503 path is still exercised,
just fast enough to be generated hundreds of times. Everything that asks for `settings` below
this folder (`command_client`, `query_client`, `pipeline`, `stack`) gets the narrowed one.

Every test here counts the requests it generates through the `cases` fixture; at the end of the
session the counts go to build/property-cases.json and into the terminal summary.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

READ_WAIT_SECONDS = 0.25

_COUNTS: Counter[str] = Counter()
_SECONDS: dict[str, float] = {}


@pytest.fixture
def settings(settings):
    return settings.with_(read_wait_seconds=READ_WAIT_SECONDS)


class Cases:
    """Counts the generated requests of one test, under a label (usually the operation)."""

    def __init__(self, test: str) -> None:
        self.test = test

    def __call__(self, label: str = "", n: int = 1) -> None:
        _COUNTS[f"{self.test}::{label}" if label else self.test] += n


@pytest.fixture
def cases(request):
    started = time.monotonic()
    yield Cases(request.node.name)
    _SECONDS[request.node.name] = round(time.monotonic() - started, 1)


def _report() -> dict:
    per_test: Counter[str] = Counter()
    for key, count in _COUNTS.items():
        per_test[key.split("::", 1)[0]] += count
    return {
        "total": sum(_COUNTS.values()),
        "per_test": dict(sorted(per_test.items())),
        "per_label": dict(sorted(_COUNTS.items())),
        "seconds_per_test": dict(sorted(_SECONDS.items())),
    }


def pytest_sessionfinish(session, exitstatus):
    if not _COUNTS:
        return
    path = Path(session.config.rootpath) / "build" / "property-cases.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_report(), indent=2) + "\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _COUNTS:
        return
    report = _report()
    terminalreporter.section("generated requests")
    for test, count in report["per_test"].items():
        seconds = report["seconds_per_test"].get(test)
        terminalreporter.write_line(f"{count:7d}  {test}" + (f"  ({seconds} s)" if seconds is not None else ""))
    terminalreporter.write_line(f"{report['total']:7d}  in all (build/property-cases.json)")
