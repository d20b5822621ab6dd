"""What a check found: the student's answer beside what the live system did, and one hint.

A check returns a `Verdict`; it never raises for a wrong answer. The feedback module turns a
verdict into what the student sees (and into the exception that stops Restart & Run All).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cqrs_demo.course.student_code import is_stub_function


@dataclass(frozen=True)
class Row:
    """One item of a compared answer: a delivery, a counter, a step of a scenario."""

    item: str
    answer: str
    observed: str
    ok: bool


@dataclass(frozen=True)
class Verdict:
    """`answer`: what the student predicted or built; `observed`: what the live system did.

    `hint` is a hint aimed at this very mistake; without one, the exercise's first hint is shown.
    `rows` optionally break the comparison down item by item.
    `observed` is withheld while the answer is the stub: seeing it first would spoil the prediction.
    """

    passed: bool
    answer: str
    observed: str
    hint: str | None = None
    rows: tuple[Row, ...] = field(default_factory=tuple)
    answered: bool = True  # False: the student edition's `...` is still in place


def not_answered(what: str = "the `...` is still there") -> Verdict:
    return Verdict(
        passed=False,
        answer=f"nothing yet ({what})",
        observed="not shown until you have committed to an answer",
        hint="Replace the `...` with your answer, run that cell, then run this check again.",
        answered=False,
    )


def is_unanswered(answer: Any) -> bool:
    """The stub of the student edition (`...`), alone or inside the list or dict around it."""
    if answer is Ellipsis:
        return True
    if isinstance(answer, (list, tuple, set, frozenset)):
        return any(item is Ellipsis for item in answer)
    if isinstance(answer, dict):
        return any(value is Ellipsis for value in answer.values())
    if callable(answer):
        return is_stub_function(answer)
    return False
