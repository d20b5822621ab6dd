"""The progress record in the real PostgreSQL: attempts, passes and hints, for a student and a class.

Each test writes to a schema of its own (the product's is `course`) and drops it afterwards.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from cqrs_demo.connections import ensure_database
from cqrs_demo.course import ExerciseNotPassed, class_progress, exercise, record
from cqrs_demo.course.record import COLUMNS, ProgressRecord
from cqrs_demo.write.schema import drop_schema

OBSERVED = {"the same event again": "duplicate", "an event for an older version (1)": "duplicate",
            "an event two versions ahead": "gap"}


@pytest.fixture
def engine(base_settings):
    ensure_database(base_settings.database_url)
    engine = sa.create_engine(base_settings.database_url)  # no namespace: the record is outside them
    yield engine
    engine.dispose()


@pytest.fixture
def progress_record(engine):
    schema = "course_t_" + uuid.uuid4().hex[:10]
    yield ProgressRecord(engine, schema)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def row(progress_record, student, exercise_id):
    rows = progress_record.rows(student).set_index("exercise")
    return rows.loc[exercise_id]


def test_a_passed_check_in_a_notebook_is_recorded_for_the_student(progress_record, monkeypatch):
    monkeypatch.setenv("CQRS_STUDENT", "ada lovelace")
    with record.use(progress_record):
        with pytest.raises(ExerciseNotPassed):
            exercise("03.1").check(["applied", "duplicate", "gap"], observed=OBSERVED)
        exercise("03.1").check(["duplicate", "duplicate", "gap"], observed=OBSERVED)
        exercise("03.1").check(["duplicate", "duplicate", "gap"], observed=OBSERVED)
    mine = row(progress_record, "ada lovelace", "03.1")
    assert mine["notebook"] == "03_events_and_the_projector"
    assert mine["attempts"] == 3 and mine["attempts_to_pass"] == 2 and bool(mine["last_passed"])
    assert mine["first_attempt_at"] <= mine["passed_at"] <= mine["last_attempt_at"]


def test_the_first_pass_is_kept_when_a_later_attempt_fails(progress_record):
    progress_record.record_attempt("ada", "03.2", "03_events_and_the_projector", True)
    first_pass = row(progress_record, "ada", "03.2")["passed_at"]
    progress_record.record_attempt("ada", "03.2", "03_events_and_the_projector", False)
    mine = row(progress_record, "ada", "03.2")
    assert mine["passed_at"] == first_pass and mine["attempts_to_pass"] == 1
    assert mine["attempts"] == 2 and not bool(mine["last_passed"])


def test_hints_are_counted_before_any_attempt(progress_record):
    progress_record.record_hint("bob", "03.1", "03_events_and_the_projector")
    progress_record.record_hint("bob", "03.1", "03_events_and_the_projector")
    bobs = row(progress_record, "bob", "03.1")
    assert bobs["hints_shown"] == 2 and bobs["attempts"] == 0
    progress_record.record_attempt("bob", "03.1", "03_events_and_the_projector", False)
    bobs = row(progress_record, "bob", "03.1")
    assert bobs["attempts"] == 1 and bobs["hints_shown"] == 2 and bobs["first_attempt_at"] is not None


def test_class_progress_reads_every_student(progress_record, engine):
    assert list(class_progress(engine, progress_record.schema).columns) == list(COLUMNS)  # no table yet: empty
    for student, passed in (("ada", True), ("bob", False), ("chloé", True)):
        progress_record.record_attempt(student, "03.1", "03_events_and_the_projector", passed)
    table = class_progress(engine, progress_record.schema)
    assert table["student"].tolist() == ["ada", "bob", "chloé"]
    assert table["passed_at"].notna().tolist() == [True, False, True]


def test_the_record_survives_a_reset_of_the_students_stack(progress_record, write_engine, settings):
    """Notebooks drop their namespace's schema on every start; the record is elsewhere."""
    progress_record.record_attempt("ada", "03.1", "03_events_and_the_projector", True)
    drop_schema(settings, write_engine)  # the `write_engine` fixture created the namespace's schema
    assert row(progress_record, "ada", "03.1")["attempts"] == 1


def test_many_kernels_creating_the_record_at_once_all_succeed(progress_record, engine):
    errors = []

    def first_check(n):
        try:
            ProgressRecord(engine, progress_record.schema).record_attempt(f"s{n}", "03.1", "03_x", True)
        except Exception as exc:  # noqa: BLE001 - any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=first_check, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(class_progress(engine, progress_record.schema)) == 6


def test_an_unreachable_database_costs_the_record_not_the_feedback(monkeypatch):
    unreachable = ProgressRecord(sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none",
                                                  connect_args={"connect_timeout": 2}))
    with record.use(unreachable):
        problem = record.record_attempt(exercise("03.1"), True)
    assert problem.startswith("(this attempt was not recorded in your progress: OperationalError")
