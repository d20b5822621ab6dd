"""What the student sees after a check: their answer, what the live system did, one hint.

In the style of maelstrom's checker: a concrete comparison, never a bare "failed" and never a
traceback. A check that is not met shows its feedback and then raises `ExerciseNotPassed`, whose
message is the same feedback as text and whose traceback is one line, so that Restart & Run
All stops at the first unmet check, with the reason in view.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from IPython import get_ipython
from IPython.display import display

from cqrs_demo.course.kinds import Kind
from cqrs_demo.course.verdict import Verdict

if TYPE_CHECKING:
    from cqrs_demo.course.definition import Exercise

PASSED, NOT_PASSED = "#2e7d32", "#c62828"
BOX = "border-left:4px solid {colour};padding:6px 12px;margin:6px 0;font-family:sans-serif;line-height:1.45"


class ExerciseNotPassed(Exception):
    """An exercise's check was not met; the message says what was expected and what happened."""

    def __init__(self, exercise: "Exercise", verdict: Verdict, hint: str) -> None:
        super().__init__(as_text(exercise, verdict, hint))
        self.exercise_id = exercise.id
        self.verdict = verdict
        self.headline = headline(exercise, verdict)

    def _render_traceback_(self) -> list[str]:
        # IPython shows these lines instead of a traceback: the feedback above says the rest.
        return [f"\x1b[1;31mExercise {self.exercise_id} not passed yet\x1b[0m: {self.headline}"]


def headline(exercise: "Exercise", verdict: Verdict) -> str:
    """The verdict in one line: the first item that differs, or what the answer did."""
    if not verdict.answered:
        return "not answered yet: replace the `...` with your answer"
    if exercise.kind is Kind.MODIFY:
        return verdict.answer
    wrong = [row for row in verdict.rows if not row.ok]
    if wrong:
        return f"{wrong[0].item}: you said {wrong[0].answer}, the system did {wrong[0].observed}"
    return f"you predicted {verdict.answer}; the system did {verdict.observed}"


class Feedback:
    """HTML for notebooks, the same words as text elsewhere (a terminal, a log, a test)."""

    def __init__(self, html: str, text: str) -> None:
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def show(exercise: "Exercise", verdict: Verdict, hint: str, unrecorded: str | None = None) -> None:
    """The verdict below the check cell; when not met, a button for more hints too."""
    display(Feedback(as_html(exercise, verdict, hint), as_text(exercise, verdict, hint)))
    if unrecorded:
        display(Feedback(f"<small style='color:#777'>{escape(unrecorded)}</small>", unrecorded))
    if not verdict.passed and len(exercise.hints) > 1 and _in_kernel():  # a widget needs a frontend
        display(hint_button(exercise))


def show_hint(exercise: "Exercise", number: int) -> None:
    text = f"Hint {number} of {len(exercise.hints)}: {exercise.hints[number - 1]}"
    display(Feedback(hint_html(exercise, number), text))


def _in_kernel() -> bool:
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def as_text(exercise: "Exercise", verdict: Verdict, hint: str | None) -> str:
    status = "passed" if verdict.passed else "not passed yet"
    answer_label, observed_label = f"{exercise.kind.answer_label}:", f"{exercise.kind.observed_label}:"
    width = max(len(answer_label), len(observed_label)) + 1
    lines = [
        f"{'✓' if verdict.passed else '✗'} Exercise {exercise.id} ({exercise.title}): {status}.",
        f"  {answer_label:<{width}}{verdict.answer}",
        f"  {observed_label:<{width}}{verdict.observed}",
    ]
    lines += [f"  {row.item}: yours {row.answer}; {exercise.kind.observed_label.lower()} {row.observed}"
              for row in verdict.rows if not row.ok]
    if verdict.passed and exercise.why:
        lines.append(f"  Why: {exercise.why}")
    if not verdict.passed and hint:
        lines.append(f"  Hint: {hint}")
    return "\n".join(lines)


def as_html(exercise: "Exercise", verdict: Verdict, hint: str | None) -> str:
    colour = PASSED if verdict.passed else NOT_PASSED
    status = "passed" if verdict.passed else "not passed yet"
    parts = [
        f'<div style="{BOX.format(colour=colour)}">',
        f'<b style="color:{colour}">{"✓" if verdict.passed else "✗"} Exercise {escape(exercise.id)}</b> · '
        f"{escape(exercise.title)} — <b>{status}</b>",
    ]
    # A prediction's items say it all; code's items need the sentence on what went wrong too.
    if not verdict.rows or exercise.kind is Kind.MODIFY:
        parts.append(
            f"<div><b>{escape(exercise.kind.answer_label)}:</b> {escape(verdict.answer)}</div>"
            f"<div><b>{escape(exercise.kind.observed_label)}:</b> {escape(verdict.observed)}</div>"
        )
    if verdict.rows:
        parts.append(_rows_table(exercise, verdict))
    if verdict.passed and exercise.why:
        parts.append(f"<div><b>Why:</b> {escape(exercise.why)}</div>")
    if not verdict.passed and hint:
        parts.append(f"<div><b>Hint:</b> {escape(hint)}</div>")
    parts.append("</div>")
    return "".join(parts)


def _rows_table(exercise: "Exercise", verdict: Verdict) -> str:
    cell = "style='text-align:left;padding:1px 14px 1px 0'"
    head = (f"<tr><th {cell}></th><th {cell}>{escape(exercise.kind.answer_label.lower())}</th>"
            f"<th {cell}>{escape(exercise.kind.observed_label.lower())}</th><th></th></tr>")
    body = "".join(
        f"<tr><td {cell}>{escape(row.item)}</td><td {cell}>{escape(row.answer)}</td>"
        f"<td {cell}>{escape(row.observed)}</td>"
        f"<td style='color:{PASSED if row.ok else NOT_PASSED}'>{'✓' if row.ok else '✗'}</td></tr>"
        for row in verdict.rows
    )
    return f"<table style='margin:4px 0'>{head}{body}</table>"


def hint_html(exercise: "Exercise", number: int) -> str:
    total = len(exercise.hints)
    text = exercise.hints[min(number, total) - 1]
    last = " (the last one: the solution itself is in the instructor's edition)" if number >= total else ""
    return (f'<div style="{BOX.format(colour="#f9a825")}"><b>Exercise {escape(exercise.id)}, hint '
            f"{min(number, total)} of {total}{last}:</b> {escape(text)}</div>")


def card_html(exercise: "Exercise") -> str:
    """The exercise as a card: what to do, and how to get a hint."""
    return (
        f'<div style="{BOX.format(colour="#1565c0")}"><b>Exercise {escape(exercise.id)} · '
        f"{escape(exercise.kind.value)}</b> — {escape(exercise.title)}<div>{escape(exercise.goal)}</div>"
        f"<div style='color:#555'>Stuck? <code>exercise(\"{escape(exercise.id)}\").hint()</code> shows a hint "
        f"({len(exercise.hints)} in all).</div></div>"
    )


def hint_button(exercise: "Exercise"):
    """A button that reveals the next hint below itself (needs a live kernel, as widgets do)."""
    import ipywidgets as w

    button = w.Button(description="Another hint", icon="lightbulb-o", tooltip=f"exercise {exercise.id}")
    output = w.Output()

    def reveal(_) -> None:
        with output:
            exercise.hint()

    button.on_click(reveal)
    return w.VBox([button, output])
