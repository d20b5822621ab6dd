"""The student's edition of the course, written from the instructor's (the notebooks in the repo).

One source, two editions, in nbgrader's format: an exercise's answer cell is an nbgrader
*solution* cell (`"solution": true`) with the solution between `### BEGIN SOLUTION` and
`### END SOLUTION`; its check cell is a locked, autograded test cell (`"grade": true`, one
point). The student's edition is what nbgrader's own preprocessors make of it: solutions
replaced by a stub, outputs cleared, check cells locked, checksums computed, metadata
validated. Because the metadata is nbgrader's, an instructor who runs nbgrader can also use
`nbgrader generate_assignment` and `nbgrader autograde` on the same notebooks.

The stub is `...`, so an unsolved notebook runs into its check, not into an error: a
prediction `prediction = [...]` reaches the check, which says it is not answered yet; a
function whose body is `...` returns None, and its check says what it expected.

    python -m cqrs_demo.course.edition [SOURCE] [TARGET]     # what `make student` runs
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

STUB = "..."
MARKERS = ("BEGIN SOLUTION", "END SOLUTION")


class EditionError(ValueError):
    """A notebook that cannot become a student's edition; the message names the cell."""


@dataclass(frozen=True)
class Written:
    path: Path
    exercises: int  # answer cells whose solution was replaced


def student_notebook(notebook: NotebookNode, stub: str = STUB) -> NotebookNode:
    """The student's edition of one notebook (a copy; `notebook` is left as it was)."""
    notebook = nbformat.from_dict(notebook)  # a deep copy
    resources: dict = {}
    steps = (
        LockCells(),
        ClearSolutions(code_stub={"python": stub}),
        ClearHiddenTests(),
        ClearOutput(),
        ComputeChecksums(),
        CheckCellMetadata(),
    )
    try:
        for step in steps:
            notebook, resources = step.preprocess(notebook, resources)
    except Exception as exc:  # nbgrader raises RuntimeError and its own ValidationError
        raise EditionError(f"{type(step).__name__}: {exc}") from None
    for index, cell in enumerate(notebook.cells):
        if any(marker in cell.source for marker in MARKERS):
            raise EditionError(f"cell {index} still holds a solution marker: is it a solution cell?")
    return notebook


def instructor_only(notebook: NotebookNode) -> bool:
    """A notebook for the instructor alone (the class's view, `00_instructor`), marked in its
    metadata as `"cqrs": {"instructor_only": true}`: the student's edition leaves it out."""
    return bool(notebook.metadata.get("cqrs", {}).get("instructor_only"))


def answer_cells(notebook: NotebookNode) -> list[NotebookNode]:
    return [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("solution")]


def build(source: Path, target: Path, stub: str = STUB) -> list[Written]:
    """Write the student's edition of every notebook in `source` (but the instructor's own) into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(source).glob("*.ipynb")):
        instructor = nbformat.read(path, as_version=4)
        if instructor_only(instructor):
            continue
        try:
            student = student_notebook(instructor, stub)
        except EditionError as exc:
            raise EditionError(f"{path.name}: {exc}") from None
        nbformat.write(student, target / path.name)
        written.append(Written(target / path.name, len(answer_cells(instructor))))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the student's edition of the course's notebooks.")
    parser.add_argument("source", nargs="?", default="notebooks", type=Path)
    parser.add_argument("target", nargs="?", default="build/student", type=Path)
    arguments = parser.parse_args(argv)
    try:
        written = build(arguments.source, arguments.target)
    except EditionError as exc:
        parser.exit(1, f"make student: {exc}\n")
    for notebook in written:
        print(f"  {notebook.path}  ({notebook.exercises} answer cell(s) replaced by a stub)")
    print(f"the student's edition: {len(written)} notebooks in {arguments.target}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
