"""The chaos run end to end, on the real servers: a minute of every fault must pass, and the same
run with the projector's version check switched off must fail, so the verdict is shown able to fail."""

from __future__ import annotations

import uuid

import pytest

from cqrs_demo.chaos import schedule
from cqrs_demo.lab import chaos

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def label(what: str) -> str:
    """A stack label of its own for each run (at most 14 characters, as labels are)."""
    return f"chaos_{what}_{uuid.uuid4().hex[:4]}"


@pytest.fixture
def settings_for_runs(base_settings, tmp_path) -> dict:
    """The test database and the test's own run folder; each run starts its own MongoDB stand-in."""
    return {"database_url": base_settings.database_url, "run_dir": tmp_path, "mongo_url": None}


def test_a_minute_of_every_fault_loses_doubles_and_reorders_nothing(settings_for_runs):
    result = chaos.run(seconds=60, seed=21, label=label("e2e"), **settings_for_runs)
    assert result.passed, str(result)
    table = result.frame()["count"]
    assert all(table[f"fault: {kind}"] >= 1 for kind in schedule.KINDS), str(result)
    assert table["events committed"] > 200 and table["read model equal"] == "yes", str(result)
    # Every kind of command was accepted, and the only refusal is an order for more than is in stock.
    answers = result.verdict.answers
    for command in ("create product 201", "update product 200", "replace product 200", "place order 201",
                    "cancel order 200"):
        assert answers.get(command), answers
    assert set(result.verdict.refusals) <= {"place order 409"}, result.verdict.refusals


def test_without_the_version_check_the_verdict_fails_and_names_the_events(settings_for_runs):
    result = chaos.run(seconds=20, seed=21, label=label("nd"), projector_dedup=False, **settings_for_runs)
    assert not result.passed, str(result)
    assert result.verdict.evidence.applied_twice > 0, str(result)
    examples = result.examples()
    assert not examples.empty and examples["anomaly"].str.startswith("applied").any(), examples.to_string()
