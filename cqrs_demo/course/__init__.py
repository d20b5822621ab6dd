"""Exercises for the course: the student predicts, changes and breaks things; the live stack checks.

What a notebook imports (see `notebooks/AUTHORING.md` for writing exercises):

    from cqrs_demo.course import exercise, progress

    exercise("03.1")                          # the exercise as a card: goal, how to get a hint
    exercise("03.1").check(prediction, observed=outcomes)   # feedback; stops Run All if not met
    exercise("03.1").hint()                   # the next hint
    progress()                                # this student's exercises: passed, tried, not started

An exercise is declared in `cqrs_demo/course/exercises/nbNN.py` (goal, check, hints, a wrong
answer); its solution exists only in the instructor's edition of the notebook, between
nbgrader's `### BEGIN SOLUTION` / `### END SOLUTION` markers. `make student` writes the
student's edition (`cqrs_demo.course.edition`). The record of attempts is in PostgreSQL,
schema `course` (`cqrs_demo.course.record`; `class_progress(engine)` reads the whole class).
"""

from cqrs_demo.course.catalog import UnknownExercise, all_exercises, exercise
from cqrs_demo.course.definition import Exercise, ExerciseDefinitionError
from cqrs_demo.course.kinds import Kind
from cqrs_demo.course.feedback import ExerciseNotPassed
from cqrs_demo.course.record import ProgressRecord, class_progress, current_student
from cqrs_demo.course.report import progress
from cqrs_demo.course.verdict import Row, Verdict

__all__ = [
    "Exercise",
    "ExerciseDefinitionError",
    "ExerciseNotPassed",
    "Kind",
    "ProgressRecord",
    "Row",
    "UnknownExercise",
    "Verdict",
    "all_exercises",
    "class_progress",
    "current_student",
    "exercise",
    "progress",
]
