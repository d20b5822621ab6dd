"""The instructor's view without servers: a stack's state from what the servers showed, the per-student rows."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cqrs_demo.classroom import census, counters
from cqrs_demo.classroom.census import Survey, stack_state
from cqrs_demo.classroom.lease import already_running_message
from cqrs_demo.classroom.naming import namespace_for
from cqrs_demo.classroom.reset import ResetReport, _clear_namespace
from cqrs_demo.classroom.servers import Findings
from cqrs_demo.config import Settings

NS = namespace_for("ada", "nb01")
OUTBOX_QUEUE = f"{NS}.projector"
NAIVE_QUEUE = f"{NS}.projector.naive"
NOW = datetime(2025, 3, 1, 9, 30, tzinfo=timezone.utc)


def row(delivery="outbox", stopped=False):
    return {"namespace": NS, "student": "ada", "notebook": "nb01", "delivery": delivery, "pid": 42, "host": "lab-1",
            "stopped_at": NOW if stopped else None}


@pytest.mark.parametrize("registered, leases, relays, consumers, expected", [
    (row(), {NS}, {NS}, {OUTBOX_QUEUE: 1}, ("running", "")),
    (row(), {NS}, {NS}, {OUTBOX_QUEUE: 0}, ("partly running", "projector not working")),
    (row(), {NS}, set(), {OUTBOX_QUEUE: 1}, ("partly running", "relay not working")),
    (row(), {NS}, set(), {}, ("partly running", "relay and projector not working")),
    (row("naive"), {NS}, set(), {NAIVE_QUEUE: 1}, ("running", "")),  # naive delivery has no relay
    (row(stopped=True), set(), set(), {}, ("stopped", "")),
    (row(), set(), set(), {}, ("gone", "never stopped: its kernel died")),
    # Its kernel died, or it was stopped, a moment ago and a service is still on its way out: not gone yet.
    (row(), set(), {NS}, {OUTBOX_QUEUE: 0}, ("partly running", "stopping: relay still running")),
    (row(stopped=True), set(), set(), {OUTBOX_QUEUE: 1}, ("partly running", "stopping: projector still running")),
    (None, set(), set(), {}, ("gone", "left on the servers, not in the registry")),
    (None, set(), {NS}, {OUTBOX_QUEUE: 1}, ("running", "")),  # running is what the servers show, record or not
])
def test_a_stacks_state_comes_from_the_locks_and_the_queue(registered, leases, relays, consumers, expected):
    found = Findings(schemas={NS}, leases=leases, relays=relays)
    assert stack_state(NS, registered, found, consumers) == expected


def stack(student, notebook, state, counts=None, measurement=None):
    return {"student": student, "notebook": notebook, "state": state, "counters": counts, "measurement": measurement}


def test_one_row_per_student_with_their_stacks_exercises_and_counters_summed():
    rows = census.students([
        stack("bob", "nb01", "running", {"committed": 5, "not_applied": 1, "duplicates": 2}),
        stack("ada", "nb06_naive", "stopped", {"committed": 10, "not_applied": 4}, {"events lost": 4}),
        stack("ada", "nb01", "gone", None),
        stack("Cy", "nb02", "partly running", {"gaps": 3}),
    ], passed={"ada": 3, "dee": 1})
    assert [r["student"] for r in rows] == ["ada", "bob", "Cy", "dee"]  # dee: exercises, no stack left
    ada, bob, cy, dee = rows
    assert ada["notebooks"] == "nb01, nb06_naive" and (ada["stopped"], ada["gone"], ada["running"]) == (1, 1, 0)
    assert (ada["committed"], ada["not_applied"], ada["lost (measured)"], ada["exercises passed"]) == (10, 4, 4, 3)
    assert (bob["duplicates"], bob["exercises passed"]) == (2, 0)
    assert cy["partly running"] == 1 and cy["gaps"] == 3
    assert dee["notebooks"] == "" and dee["exercises passed"] == 1
    assert list(ada) == list(census.STUDENT_COLUMNS)


def test_without_a_progress_record_the_exercises_column_is_empty_not_zero():
    (only,) = census.students([stack("ada", "nb01", "running")], passed=None)
    assert only["exercises passed"] is None


def test_not_applied_is_what_was_committed_and_never_applied():
    assert counters.with_committed({"applied": 7, "duplicates": 2}, 10)["not_applied"] == 3
    assert counters.with_committed({"applied": 12}, 10)["not_applied"] == 0  # never negative
    assert "committed" not in counters.with_committed({"applied": 1}, None)


def test_reset_refuses_any_namespace_that_is_not_a_class_one():
    seen = Survey({}, Findings(schemas={"t_abc"}), ["t_abc"], {}, "course")
    with pytest.raises(ValueError, match="not a class namespace"):
        _clear_namespace("t_abc", seen, Settings(), engine=None, channel=None, report=ResetReport())


def test_a_dry_run_says_would():
    report = ResetReport([("schema", NS)], [("cls_x", "still running")], dry_run=True)
    assert report.lines() == [f"would remove schema {NS}", "skipped cls_x: still running"]
    assert ResetReport().lines() == ["nothing to remove"]


def test_the_second_kernel_is_told_where_the_first_runs_and_what_to_do():
    message = already_running_message("nb01", "Ana B", {"pid": 4242, "host": "hub-3", "started_at": NOW})
    for expected in ("'nb01'", "'Ana B'", "pid 4242", "hub-3", "2025-03-01 09:30:00 UTC", "stack.stop()",
                     "Shut Down Kernel"):
        assert expected in message


def test_a_class_command_says_which_way_to_look_when_a_server_is_down(monkeypatch, capsys):
    import pika.exceptions

    from cqrs_demo.runtime import cli

    def unreachable(*args, **kwargs):
        raise pika.exceptions.AMQPConnectionError()

    monkeypatch.setattr(census, "class_status", unreachable)
    assert cli.main(["class", "status"]) == 1
    said = capsys.readouterr().err
    assert "a server does not answer (AMQPConnectionError)" in said and "cqrs-demo doctor" in said


def test_exercises_passed_counts_each_students_passed_exercises_from_the_progress_record(monkeypatch):
    import sys
    import types

    import pandas as pd

    record = types.ModuleType("cqrs_demo.course.record")
    record.class_progress = lambda engine, schema: pd.DataFrame({
        "student": ["ada", "ada", "ada", "bob"], "exercise": ["01.1", "01.2", "02.1", "01.1"],
        "passed_at": [NOW, None, NOW, None],
    })
    monkeypatch.setitem(sys.modules, "cqrs_demo.course.record", record)
    assert census.exercises_passed(engine=None) == {"ada": 2}


def test_exercises_passed_is_none_while_the_course_has_no_progress_record(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cqrs_demo.course.record", None)  # importing it fails
    assert census.exercises_passed(engine=None) is None
