"""A student's own progress, as a table the notebook shows: every exercise, and where they are."""

from __future__ import annotations

import pandas as pd

from cqrs_demo.course import record
from cqrs_demo.course.catalog import all_exercises


def progress(notebook: str | None = None, student: str | None = None) -> pd.DataFrame:
    """One row per exercise of the course (or of `notebook`, e.g. "03"): passed, tried or not started.

    `student` defaults to whoever runs the notebook (`Settings.student`).
    """
    student = student or record.current_student()
    rows = record.current_record().rows(student).set_index("exercise")
    table = []
    for exercise_id, found in all_exercises().items():
        if notebook and not found.notebook.startswith(notebook):
            continue
        mine = rows.loc[exercise_id] if exercise_id in rows.index else None
        table.append({
            "exercise": exercise_id,
            "title": found.title,
            "kind": found.kind.value,
            "status": _status(mine),
            "attempts": 0 if mine is None else int(mine["attempts"]),
            "hints": 0 if mine is None else int(mine["hints_shown"]),
            "passed at": None if mine is None or pd.isna(mine["passed_at"]) else mine["passed_at"].floor("s"),
        })
    frame = pd.DataFrame(table, columns=["exercise", "title", "kind", "status", "attempts", "hints", "passed at"])
    frame.attrs["student"] = student
    return frame.set_index("exercise")


def _status(mine) -> str:
    if mine is None or not mine["attempts"]:
        return "not started"
    if pd.notna(mine["passed_at"]):
        return "passed ✓" if mine["last_passed"] else "passed ✓ (last run not)"
    return "tried"
