"""Exercises, their feedback and their hints, with the progress record replaced by a fake: no I/O."""

from __future__ import annotations

import pandas as pd
import pytest

from cqrs_demo.course import ExerciseNotPassed, Kind, Verdict, exercise, record
from cqrs_demo.course.catalog import UnknownExercise
from cqrs_demo.course.definition import REHEARSAL_VARIABLE, Exercise, ExerciseDefinitionError
from cqrs_demo.course.predictions import choices
from cqrs_demo.course.report import progress
from cqrs_demo.course.student_code import is_stub_function, run, student_error


class FakeRecord:
    """The progress record's interface, in memory."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str, str, bool]] = []
        self.hints: list[tuple[str, str]] = []

    def record_attempt(self, student, exercise_id, notebook, passed):
        self.attempts.append((student, exercise_id, notebook, passed))

    def record_hint(self, student, exercise_id, notebook):
        self.hints.append((student, exercise_id))

    def rows(self, student=None):
        passed = {e for s, e, _, ok in self.attempts if ok and s == student}
        frame = pd.DataFrame([
            {"student": s, "exercise": e, "notebook": n, "attempts": sum(1 for a in self.attempts if a[1] == e),
             "hints_shown": 0, "first_attempt_at": None, "last_attempt_at": None, "last_passed": ok,
             "passed_at": pd.Timestamp("2030-01-01", tz="UTC") if e in passed else pd.NaT, "attempts_to_pass": None}
            for s, e, n, ok in self.attempts if s == student
        ], columns=list(record.COLUMNS))
        return frame.drop_duplicates("exercise", keep="last")


@pytest.fixture
def fake_record(monkeypatch):
    monkeypatch.setenv("CQRS_STUDENT", "ada")
    fake = FakeRecord()
    with record.use(fake):
        yield fake


def toy(**changes) -> Exercise:
    declared = dict(
        id="03.9", kind=Kind.PREDICT, notebook="03_events_and_the_projector", title="Toy",
        goal="Predict the outcome.", checker=choices("applied", "duplicate", "gap"),
        hints=("first hint", "second hint"), wrong_answer=["gap"], why="because",
    )
    return Exercise(**{**declared, **changes})


OBSERVED = {"the same event again": "duplicate"}


# --- checking ---------------------------------------------------------------------------------


def test_a_right_answer_passes_and_is_recorded(fake_record, capsys):
    toy().check(["duplicate"], observed=OBSERVED)
    assert fake_record.attempts == [("ada", "03.9", "03_events_and_the_projector", True)]
    shown = capsys.readouterr().out
    assert "✓ Exercise 03.9 (Toy): passed." in shown and "Why: because" in shown


def test_a_wrong_answer_raises_the_feedback_with_a_one_line_traceback(fake_record):
    with pytest.raises(ExerciseNotPassed) as caught:
        toy().check(["applied"], observed=OBSERVED)
    message = str(caught.value)
    assert "Exercise 03.9" in message and "not passed yet" in message
    assert "You predicted:" in message and "'applied'" in message
    assert "The live system did:" in message and "'duplicate'" in message
    assert "Hint: first hint" in message and "Why" not in message
    rendered = caught.value._render_traceback_()
    assert len(rendered) == 1 and "the same event again: you said 'applied', the system did 'duplicate'" in rendered[0]
    assert fake_record.attempts[-1][3] is False


def test_the_stub_is_not_answered_and_the_observation_is_withheld(fake_record):
    for stub in (..., [...], {"the same event again": ...}):
        with pytest.raises(ExerciseNotPassed) as caught:
            toy().check(stub, observed=OBSERVED)
        assert "nothing yet" in str(caught.value) and "'duplicate'" not in str(caught.value)
        assert "not answered yet" in caught.value._render_traceback_()[0]


def test_a_check_called_with_the_wrong_observation_is_the_authors_mistake(fake_record):
    with pytest.raises(ExerciseDefinitionError, match="check\\(answer, observed=...\\)"):
        toy().check(["duplicate"], outcomes=OBSERVED)
    assert fake_record.attempts == []


def test_rehearsal_rejects_a_check_that_cannot_fail(fake_record, monkeypatch):
    monkeypatch.setenv(REHEARSAL_VARIABLE, "1")
    toy().check(["duplicate"], observed=OBSERVED)  # its wrong answer fails: fine
    always = toy(checker=lambda answer, observed: Verdict(True, "anything", "anything"))
    with pytest.raises(ExerciseDefinitionError, match="declared wrong answer passes"):
        always.check(["duplicate"], observed=OBSERVED)


def test_an_error_in_the_students_code_is_feedback_naming_their_line(fake_record):
    def students_rule(products, event):
        return products["missing"]  # raises KeyError here

    def checker(answer, products):
        return Verdict(answer(products, None) == "applied", "?", "applied")

    with pytest.raises(ExerciseNotPassed) as caught:
        toy(kind=Kind.MODIFY, checker=checker, wrong_answer=None).check(students_rule, products={})
    assert "KeyError: 'missing' at `return products[\"missing\"]" in str(caught.value)


def test_an_error_in_the_check_itself_keeps_its_traceback(fake_record):
    from cqrs_demo.course.exercises.nb03 import check_renamed_rule

    # read_db=None makes the package's own check fail: the author needs the traceback.
    with pytest.raises(TypeError):
        toy(kind=Kind.MODIFY, checker=check_renamed_rule, wrong_answer=None).check(
            lambda products, event: "applied", read_db=None, product_id=1)
    assert fake_record.attempts == []


def test_hints_come_one_at_a_time_and_are_counted(fake_record, capsys):
    exercise = toy(id="03.8")
    exercise.hint()
    exercise.hint()
    exercise.hint()  # no third: the last is shown again, and not counted again
    shown = capsys.readouterr().out
    assert "Hint 1 of 2: first hint" in shown and shown.count("Hint 2 of 2: second hint") == 2
    assert fake_record.hints == [("ada", "03.8"), ("ada", "03.8")]


def test_a_declaration_needs_a_numbered_id_and_hints():
    with pytest.raises(ExerciseDefinitionError):
        toy(id="3.1")
    with pytest.raises(ExerciseDefinitionError):
        toy(id="04.1")  # not notebook 03's number
    with pytest.raises(ExerciseDefinitionError):
        toy(hints=())


def test_progress_lists_every_exercise_of_the_course(fake_record):
    fake_record.record_attempt("ada", "03.1", "03_events_and_the_projector", True)
    fake_record.record_attempt("bob", "03.2", "03_events_and_the_projector", True)
    table = progress("03")
    assert table.attrs["student"] == "ada"
    assert table.loc["03.1", "status"] == "passed ✓"
    assert table.loc["03.2", "status"] == "not started"  # bob's, not ada's


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(UnknownExercise, match="03.1"):
        exercise("99.9")


# --- the student's code ------------------------------------------------------------------------


def test_the_stub_function_is_recognised():
    def stub(products, event):
        """Docstring."""
        ...

    def written(products, event):
        """Docstring."""
        return "applied"

    assert is_stub_function(stub) and not is_stub_function(written)
    assert not is_stub_function(len)  # no source: not a stub


def test_run_turns_the_students_exception_into_text():
    def raises(x):
        return 1 / x

    ran = run(raises, 0)
    assert ran.result is None and ran.error.startswith("ZeroDivisionError: division by zero at `return 1 / x`")
    assert run(raises, 2).result == 0.5


def test_student_error_blames_the_course_code_with_none():
    from cqrs_demo.course.exercises.nb03 import check_renamed_rule

    with pytest.raises(TypeError) as caught:
        check_renamed_rule(None, read_db=None, product_id=1)
    assert student_error(caught.value) is None
