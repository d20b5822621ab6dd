"""Checks for *predict, then observe* exercises: a prediction against what this run observed.

Each function here builds a check for `Exercise(check=...)`. The check is called as
`check(prediction, observed)`, where `observed` is what the notebook's experiment cell measured on
the live stack in this very run, so a right prediction always passes and a wrong one always
fails. Ask for a choice, a mapping of choices, a number or an order, never an essay.

    one_of("applied", "duplicate", "gap")       # a single choice
    choices("applied", "duplicate", "gap")      # one choice per item (a dict, or a list in order)
    number_within(absolute=2)                   # a count, give or take 2
    number_within(relative=0.25, unit="ms")     # a figure, within 25 %
    same_order()                                # a sequence of events, in order
    anomaly_appears("events lost", ...)         # break and fix: the anomaly with a guarantee off
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from typing import Any

from cqrs_demo.course.verdict import Row, Verdict

Check = Callable[..., Verdict]


def _plain(value: Any) -> Any:
    """An enum member (`Outcome.GAP`) counts as its value ("gap"); text is compared trimmed, lower case."""
    value = getattr(value, "value", value)
    return value.strip().lower() if isinstance(value, str) else value


def _show(value: Any) -> str:
    value = getattr(value, "value", value)
    return repr(value) if isinstance(value, str) else str(value)


def one_of(*allowed: str) -> Check:
    """A single choice among `allowed`."""

    def check(prediction: Any, observed: Any) -> Verdict:
        if _plain(prediction) not in map(_plain, allowed):
            return _not_a_choice(prediction, allowed)
        return Verdict(_plain(prediction) == _plain(observed), _show(prediction), _show(observed))

    return check


def choices(*allowed: str) -> Check:
    """One choice per item. `observed` maps each item to what happened, in the order shown.

    The prediction is a dict with the same items, or a list giving one choice per item in that
    order (easier to type in a cell).
    """

    def check(prediction: Any, observed: Mapping[str, Any]) -> Verdict:
        items = list(observed)
        if isinstance(prediction, Mapping):
            unknown = [key for key in prediction if key not in observed]
            missing = [item for item in items if item not in prediction]
            if unknown or missing:
                return Verdict(
                    False, f"a prediction for {', '.join(map(repr, prediction)) or 'nothing'}",
                    f"the items are {', '.join(map(repr, items))}",
                    hint="Use exactly the items of the experiment as keys, or give a list in their order.",
                )
            predicted = [prediction[item] for item in items]
        elif isinstance(prediction, Sequence) and not isinstance(prediction, str):
            if len(prediction) != len(items):
                return Verdict(
                    False, f"{len(prediction)} choice(s): {', '.join(map(_show, prediction))}",
                    f"{len(items)} items: {', '.join(map(repr, items))}",
                    hint=f"Give one choice per item, in this order: {', '.join(map(repr, items))}.",
                )
            predicted = list(prediction)
        else:
            return Verdict(False, _show(prediction), f"{len(items)} items to predict",
                           hint=f"Give a list of {len(items)} choices, one per item, in order.")
        for value in predicted:
            if _plain(value) not in map(_plain, allowed):
                return _not_a_choice(value, allowed)
        rows = tuple(
            Row(item, _show(guess), _show(observed[item]), _plain(guess) == _plain(observed[item]))
            for item, guess in zip(items, predicted)
        )
        return Verdict(
            all(row.ok for row in rows),
            ", ".join(row.answer for row in rows),
            ", ".join(row.observed for row in rows),
            rows=rows,
        )

    return check


def number_within(absolute: float | None = None, relative: float | None = None, unit: str = "") -> Check:
    """A number, right within a stated tolerance: `absolute` (same unit) or `relative` (0.25 = 25 %)."""
    if (absolute is None) == (relative is None):
        raise ValueError("give exactly one tolerance: absolute= or relative=")
    suffix = f" {unit}" if unit else ""
    stated = f"±{absolute:g}{suffix}" if absolute is not None else f"±{relative:.0%}"

    def check(prediction: Any, observed: Real) -> Verdict:
        if isinstance(prediction, bool) or not isinstance(prediction, Real):
            return Verdict(False, _show(prediction), f"a number{suffix} was measured",
                           hint="Give a number (no quotes, no unit).")
        allowed = absolute if absolute is not None else abs(observed) * relative
        return Verdict(
            abs(prediction - observed) <= allowed,
            f"{prediction:g}{suffix}",
            f"{observed:g}{suffix} (a prediction within {stated} counts)",
        )

    return check


def same_order() -> Check:
    """A sequence (of events, hops, versions) in the order the system produced it."""

    def check(prediction: Any, observed: Sequence[Any]) -> Verdict:
        if isinstance(prediction, str) or not isinstance(prediction, Sequence):
            return Verdict(False, _show(prediction), f"a sequence of {len(observed)}",
                           hint="Give a list, first item first.")
        rows = tuple(
            Row(f"#{n}", _show(guess) if n <= len(prediction) else "(missing)",
                _show(seen) if n <= len(observed) else "(nothing)",
                n <= len(prediction) and n <= len(observed) and _plain(guess) == _plain(seen))
            for n, (guess, seen) in enumerate(_padded(prediction, observed), start=1)
        )
        return Verdict(all(row.ok for row in rows), " → ".join(map(_show, prediction)),
                       " → ".join(map(_show, observed)), rows=rows)

    return check


def anomaly_appears(*anomalies: str) -> Check:
    """*Break and fix*: which anomaly appears with a guarantee off, and none once it is back on.

    `broken` and `fixed` are anomaly counters (e.g. `cqrs_demo.lab.anomalies.measure`) of the same
    experiment, run with the guarantee off and then on again. The prediction is one of
    `anomalies`, or "none"; it is right when that counter, and only that one, rose while broken.
    The check also fails if any anomaly remains once the guarantee is back on.
    """
    allowed = (*anomalies, "none")

    def check(prediction: Any, broken: Mapping[str, int], fixed: Mapping[str, int]) -> Verdict:
        if _plain(prediction) not in map(_plain, allowed):
            return _not_a_choice(prediction, allowed)
        appeared = [name for name in anomalies if broken.get(name, 0) > 0]
        remained = [f"{name}: {fixed[name]}" for name in anomalies if fixed.get(name, 0) > 0]
        seen = ", ".join(f"{name}: {broken[name]}" for name in appeared) or "none"
        predicted = [] if _plain(prediction) == "none" else [_plain(prediction)]
        rows = (
            Row("guarantee off", _show(prediction), seen, [_plain(name) for name in appeared] == predicted),
            Row("guarantee back on", "no anomaly", ", ".join(remained) or "no anomaly", not remained),
        )
        hint = None if rows[1].ok else "The guarantee is not fully back on: compare the settings of the two stacks."
        return Verdict(all(row.ok for row in rows), _show(prediction), f"{seen} while broken", hint=hint, rows=rows)

    return check


def _padded(left: Sequence[Any], right: Sequence[Any]) -> list[tuple[Any, Any]]:
    size = max(len(left), len(right))
    return [(left[n] if n < len(left) else None, right[n] if n < len(right) else None) for n in range(size)]


def _not_a_choice(value: Any, allowed: Sequence[str]) -> Verdict:
    return Verdict(
        False, _show(value), f"the possible answers are {', '.join(map(repr, allowed))}",
        hint=f"Each choice must be one of {', '.join(map(repr, allowed))}.",
    )
