"""Reading what a student's function returned: a list of whole numbers (ids, positions), or what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Real

from cqrs_demo.course.student_code import Ran


def whole_numbers(ran: Ran, limit: int = 10_000) -> tuple[list[int], str | None]:
    """The numbers in the order returned, or (`[]`, what to tell the student) if it is not such a list.

    A pandas Series or a NumPy array of integers counts as a list; a DataFrame does not (iterating
    one gives its column names), and the message says how to take a column out of it.
    """
    if ran.error:
        return [], f"raised {ran.error}"
    result = ran.result
    if result is None:
        return [], "returned None (is a `return` missing?)"
    if type(result).__name__ == "DataFrame":
        return [], "returned a whole DataFrame: take one column as a list, e.g. `frame.id.tolist()`"
    if isinstance(result, (str, bytes, dict)) or not isinstance(result, Iterable):
        return [], f"returned {result!r}, not a list of whole numbers"
    numbers: list[int] = []
    for item in result:
        if isinstance(item, bool) or not isinstance(item, Real) or int(item) != item:
            return [], f"returned {item!r} in its list, not a whole number"
        numbers.append(int(item))
        if len(numbers) > limit:
            return [], f"returned more than {limit} numbers"
    return numbers, None
