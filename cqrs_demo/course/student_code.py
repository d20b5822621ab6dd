"""The student's code inside a check: a stub not yet written, an error pointed at its line.

A check that calls a function the student wrote uses `run` (or lets an exception through to
`Exercise.judge`): either way the student reads which line of theirs raised what, not a
traceback through pymongo and this package.
"""

from __future__ import annotations

import ast
import inspect
import sysconfig
import textwrap
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PACKAGE = Path(__file__).resolve().parents[1]  # cqrs_demo/
COURSE = Path(__file__).resolve().parent  # cqrs_demo/course/
LIBRARIES = {Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")}


def is_stub_function(function: Any) -> bool:
    """A function whose body is only `...` (and a docstring): the student edition's stub."""
    try:
        definition = ast.parse(textwrap.dedent(inspect.getsource(function))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        return False
    if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = definition.body
    if body and _is_constant(body[0], str):
        body = body[1:]  # the docstring
    return len(body) == 1 and _is_constant(body[0], type(Ellipsis))


def _is_constant(statement: ast.stmt, kind: type) -> bool:
    return isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) \
        and isinstance(statement.value.value, kind)


def student_error(exc: BaseException) -> str | None:
    """`exc` as one line naming the student's line that raised it; None if the course's code raised it.

    Frames in libraries (the standard library, pymongo, the rest of `cqrs_demo`) are passed
    over: the innermost frame left is the one to blame, the student's (a notebook cell) or the
    check's own (then the author needs the full traceback, so None).
    """
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = Path(frame.filename).resolve()
        if COURSE in path.parents:
            return None
        if PACKAGE in path.parents or any(library in path.parents for library in LIBRARIES):
            continue
        where = f" at `{frame.line.strip()}`" if frame.line else f" on line {frame.lineno}"
        return f"{type(exc).__name__}: {exc or '(no message)'}{where}"
    return None


@dataclass(frozen=True)
class Ran:
    """What a call into the student's code gave: a result, or the error it raised (as text)."""

    result: Any = None
    error: str | None = None


def run(function: Callable[..., Any], *args: Any) -> Ran:
    """Call the student's function; an exception it raises becomes `Ran(error=...)`, not a traceback."""
    try:
        return Ran(result=function(*args))
    except Exception as exc:
        return Ran(error=student_error(exc) or f"{type(exc).__name__}: {exc}")
