"""The chaos run's schedule and verdict, on plain data: no stack needed."""

from __future__ import annotations

import pytest

from cqrs_demo.chaos import schedule
from cqrs_demo.chaos.evidence import tally
from cqrs_demo.chaos.verdict import Verdict


def event(number: int, aggregate_id: int = 1) -> dict:
    return {"event_id": f"e{number}", "position": number, "type": "product.updated", "aggregate_type": "product",
            "aggregate_id": aggregate_id, "aggregate_version": number}


def applied(number: int, outcome: str = "applied") -> dict:
    return {"event_id": f"e{number}", "outcome": outcome}


def verdict(evidence, faults=None) -> Verdict:
    faults = {kind: 1 for kind in schedule.KINDS} if faults is None else faults
    evidence.read_model_equal = True if evidence.read_model_equal is None else evidence.read_model_equal
    return Verdict(seed=1, seconds=60, faults=faults, commands=10, accepted=10, evidence=evidence, time_to_quiet=1.0)


# -- the schedule ------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [5, 20, 60, 300])
def test_every_kind_appears_in_order_and_within_the_run(seconds):
    faults = schedule.plan(seconds, seed=7)
    assert {fault.kind for fault in faults} == set(schedule.KINDS)
    times = [fault.at for fault in faults]
    assert times == sorted(times) and times[0] >= schedule.FIRST_AT
    assert all(fault.at + fault.hold <= max(seconds, schedule.FIRST_AT + 1) for fault in faults)


def test_faults_are_spaced_so_each_can_take_effect():
    faults = schedule.plan(300, seed=11)
    assert len(faults) >= 300 // schedule.SLOT_SECONDS - 1
    for before, after in zip(faults, faults[1:]):
        assert after.at - (before.at + before.hold) > 0, (before, after)


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    assert schedule.plan(120, seed=3) == schedule.plan(120, seed=3)
    assert schedule.plan(120, seed=3) != schedule.plan(120, seed=4)


def test_redeliveries_have_a_size_and_lasting_faults_a_hold():
    for fault in schedule.plan(300, seed=12):
        assert (fault.size > 0) == (fault.kind == schedule.REDELIVER)
        assert (fault.hold > 0) == (fault.kind in schedule.LONGEST_HOLD)


# -- the evidence and the verdict --------------------------------------------------------------


def test_every_event_applied_once_passes():
    found = tally([event(1), event(2)], [applied(1), applied(2), applied(2, "duplicate")], accepted_positions=[1, 2])
    assert (found.committed, found.lost, found.applied_twice, found.out_of_order) == (2, 0, 0, 0)
    assert verdict(found).passed


def test_an_event_never_reached_is_lost_and_named():
    found = tally([event(1), event(2)], [applied(1)])
    result = verdict(found)
    assert found.lost == 1 and not result.passed
    assert result.failures == ["1 event(s) lost"]
    assert found.examples[0] == {"anomaly": "lost", **event(2)}


def test_an_accepted_command_without_its_event_is_lost():
    found = tally([event(1)], [applied(1)], accepted_positions=[1, 5])
    assert found.lost == 1
    assert found.examples == [{"anomaly": "accepted, not in the event log", "position": 5}]


def test_an_event_applied_twice_fails():
    found = tally([event(1)], [applied(1), applied(1, "reapplied")])
    assert found.applied_twice == 1 and not verdict(found).passed
    assert found.examples[0]["anomaly"] == "applied 2 times"


def test_an_event_applied_over_a_newer_version_is_out_of_order():
    found = tally([event(1), event(2)], [applied(2), applied(1, "overwrote_newer")])
    assert found.out_of_order == 1 and not verdict(found).passed
    assert "out of order" in verdict(found).failures[0]


def test_a_read_model_that_differs_fails_even_with_a_clean_log():
    found = tally([event(1)], [applied(1)])
    found.read_model_equal, found.differences = False, 3
    assert verdict(found).failures == ["the read model differs from the write model in 3 record(s)"]


def test_a_fault_that_never_took_effect_fails_the_run():
    found = tally([event(1)], [applied(1)])
    faults = {kind: 1 for kind in schedule.KINDS if kind != schedule.POISON}
    result = verdict(found, faults)
    assert not result.passed and result.failures == [f"never took effect: {schedule.POISON}"]


def test_the_table_lists_every_fault_kind_and_the_outcome():
    result = verdict(tally([event(1)], [applied(1)]))
    table = result.table()
    for kind in schedule.KINDS:
        assert f"fault: {kind}" in table
    for line in ("events committed", "events lost", "events applied twice", "events applied out of order",
                 "read model equal", "PASSED"):
        assert line in table
    assert result.to_json()["passed"] is True
