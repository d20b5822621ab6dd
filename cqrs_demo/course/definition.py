"""An exercise: declared in the package, answered in a notebook, checked against the live stack.

The package holds everything but the solution: the goal, the check, the hints, and one wrong
answer that proves the check can fail. The notebook holds the student's answer (the solution
in the instructor's edition, a `...` stub in the student's) and a check cell:

    exercise("03.1").check(prediction, observed=...)

`check` judges the answer against what the notebook observed on the live stack in this run,
records the attempt, shows the feedback, and raises `ExerciseNotPassed` when the check is not
met. `judge` is the same comparison with no side effect, for tests.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cqrs_demo.course import feedback, record
from cqrs_demo.course.kinds import Kind
from cqrs_demo.course.student_code import student_error
from cqrs_demo.course.verdict import Verdict, is_unanswered, not_answered

ID_PATTERN = re.compile(r"^(\d\d)\.(\d+)$")

# Set by the test session (a conftest): every check that passes also runs the exercise's
# declared wrong answer against the same observation, and complains if that passes too. So
# the nbval run of the instructor's edition proves each check can fail, at almost no cost.
REHEARSAL_VARIABLE = "CQRS_COURSE_REHEARSAL"


class ExerciseDefinitionError(Exception):
    """An exercise is declared or called wrongly: a mistake of the course's author, not the student's."""


@dataclass(frozen=True, eq=False)
class Exercise:
    """One exercise. `checker(answer, **observed) -> Verdict`; see `cqrs_demo.course.predictions`.

    id:           "NN.k", NN the notebook's number, k the exercise's number in it
    notebook:     the notebook's file name without `.ipynb`
    goal:         what to do, in one or two sentences
    hints:        revealed one at a time; never the solution
    wrong_answer: an answer the check must reject (a value, or a function for `modify`)
    why:          one sentence on why the system behaves so, shown once the check passes
    """

    id: str
    kind: Kind
    notebook: str
    title: str
    goal: str
    checker: Callable[..., Verdict]
    hints: tuple[str, ...]
    wrong_answer: Any
    why: str = ""

    def __post_init__(self) -> None:
        match = ID_PATTERN.match(self.id)
        if not match or not self.notebook.startswith(match.group(1)):
            raise ExerciseDefinitionError(
                f"exercise id {self.id!r} must be 'NN.k', NN the number of the notebook {self.notebook!r}"
            )
        if not self.hints:
            raise ExerciseDefinitionError(f"exercise {self.id} needs at least one hint")
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "hints", tuple(self.hints))

    @property
    def grade_id(self) -> str:
        """The stem of the nbgrader `grade_id`s of this exercise's cells: `ex03_1_answer`, `ex03_1_check`."""
        return "ex" + self.id.replace(".", "_")

    # -- what a notebook calls ---------------------------------------------------------------

    def check(self, answer: Any, **observed: Any) -> None:
        """Judge, record, show; raise `ExerciseNotPassed` if not met (it stops Restart & Run All)."""
        verdict = self.judge(answer, **observed)
        if verdict.passed and os.environ.get(REHEARSAL_VARIABLE):
            self.rehearse(**observed)
        unrecorded = record.record_attempt(self, verdict.passed)
        hint = verdict.hint or self.hints[0]
        feedback.show(self, verdict, hint, unrecorded)
        if not verdict.passed:
            raise feedback.ExerciseNotPassed(self, verdict, hint) from None

    def hint(self) -> None:
        """Show the next hint (the last one again once all are shown)."""
        shown = _hints_shown.get(self.id, 0)
        if shown < len(self.hints):
            _hints_shown[self.id] = shown = shown + 1
            record.record_hint(self)
        feedback.show_hint(self, shown)

    def _repr_html_(self) -> str:
        return feedback.card_html(self)

    def __repr__(self) -> str:
        return f"Exercise {self.id} ({self.kind.value}): {self.title}"

    # -- without side effects ----------------------------------------------------------------

    def judge(self, answer: Any, **observed: Any) -> Verdict:
        """The verdict on `answer` against `observed`: shows, records and raises nothing."""
        try:
            inspect.signature(self.checker).bind(answer, **observed)
        except TypeError:
            raise ExerciseDefinitionError(
                f"exercise {self.id}'s check is called as check(answer, {_parameters(self.checker)}); "
                f"the notebook passed {', '.join(observed) or 'nothing'} besides the answer"
            ) from None
        if is_unanswered(answer):
            return not_answered()
        try:
            return self.checker(answer, **observed)
        except Exception as exc:
            described = student_error(exc)
            if described is None:
                raise  # the check itself failed: the author needs the traceback
            return Verdict(False, f"code that raised {described}", "the check could not finish its run",
                           hint="Run your cell on its own first and read the error; then check again.")

    def rehearse(self, **observed: Any) -> None:
        """Prove that the declared wrong answer fails against this same observation."""
        if self.judge(self.wrong_answer, **observed).passed:
            raise ExerciseDefinitionError(
                f"exercise {self.id}: its declared wrong answer passes the check too, so the check cannot fail"
            )


# Which hint each exercise is at, for this kernel: a restarted kernel starts again at hint 1.
_hints_shown: dict[str, int] = {}


def _parameters(function: Callable[..., Any]) -> str:
    names = list(inspect.signature(function).parameters)[1:]
    return ", ".join(f"{name}=..." for name in names)

