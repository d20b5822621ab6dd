"""The student's edition, built in this session and run as a student runs it, on the real servers.

- Unsolved, each notebook with exercises runs until its first check and stops there, with that
  exercise's feedback: not at an import error, a NameError or a crash.
- The pilot notebook (03) with a wrong answer in place of a solution stops at that exercise's
  check, with a message that says what went wrong.

That each check passes on its solution is proved by the instructor's edition under nbval
(notebooks/), where every passing check also rehearses its exercise's declared wrong answer
(see the repository's conftest.py).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import uuid
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbgrader.preprocessors import ClearSolutions

from cqrs_demo import config
from cqrs_demo.classroom.reset import reset
from cqrs_demo.course import all_exercises, exercise
from cqrs_demo.course.catalog import of_notebook
from cqrs_demo.course.edition import build
from cqrs_demo.course.record import progress_table
from cqrs_demo.polling import wait_until

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WITH_EXERCISES = sorted({declared.notebook for declared in all_exercises().values()})

@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    """The student's edition, and the folder the notebooks run in (their `.run` goes there too)."""
    target = tmp_path_factory.mktemp("student")
    build(NOTEBOOKS, target)
    return target


@pytest.fixture
def student(monkeypatch):
    """A student of this test alone (the kernels inherit it); their progress rows and the stacks
    their notebooks left (a notebook stopped at a check never reaches `stack.stop()`) go afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CQRS_STUDENT", name)
    yield name
    # Its kernels are shut down; their stacks' processes die with them, within moments.
    wait_until(lambda: not reset(config.from_environment(), name).skipped, timeout=60, interval=1,
               what=f"the stacks of {name}'s notebooks to stop and be removed")
    engine = sa.create_engine(config.from_environment().database_url)
    try:
        with engine.begin() as conn:
            if sa.inspect(conn).has_table("progress", schema="course"):
                table = progress_table()
                conn.execute(table.delete().where(table.c.student == name))
    finally:
        engine.dispose()


def body_of(function) -> str:
    """The statements of a function, without its `def` line and docstring: an answer region's text."""
    source = textwrap.dedent(inspect.getsource(function))
    definition = ast.parse(source).body[0]
    first = definition.body[1] if ast.get_docstring(definition) else definition.body[0]
    lines = source.splitlines()[first.lineno - 1:definition.end_lineno]
    return textwrap.dedent("\n".join(lines))


def run(notebook, directory: Path) -> CellExecutionError | None:
    client = NotebookClient(notebook, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(directory)}})
    try:
        client.execute()
    except CellExecutionError as exc:
        return exc
    return None


def stopped_at(notebook) -> list[tuple[int, str, dict]]:
    """(index, grade_id, error output) of every cell that ended in an error."""
    return [
        (index, cell.metadata.get("nbgrader", {}).get("grade_id", ""), output)
        for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "error"
    ]


@pytest.mark.parametrize("name", WITH_EXERCISES)
def test_an_unsolved_notebook_stops_at_its_first_check(edition, student, name):
    notebook = nbformat.read(edition / f"{name}.ipynb", as_version=4)
    first = of_notebook(name)[0]
    error = run(notebook, edition)
    assert error is not None, f"{name}, unsolved, ran to the end: its checks cannot fail"
    errors = stopped_at(notebook)
    assert len(errors) == 1, errors
    index, grade_id, output = errors[0]
    assert grade_id == f"{first.grade_id}_check", f"stopped at cell {index} ({grade_id!r}): {output}"
    assert output["ename"] == "ExerciseNotPassed"
    assert f"Exercise {first.id}" in output["evalue"] and "nothing yet" in output["evalue"]
    assert output["traceback"] and len(output["traceback"]) == 1  # the feedback, not a traceback


def test_the_pilot_with_a_wrong_answer_stops_at_that_exercises_check(edition, student):
    """03.2 answered with its declared wrong answer: a check-then-act rule, right one delivery at a
    time, wrong when a second projector writes between its read and its write."""
    notebook = nbformat.read(NOTEBOOKS / "03_events_and_the_projector.ipynb", as_version=4)
    wrong = ClearSolutions(code_stub={"python": body_of(exercise("03.2").wrong_answer)})
    for index, cell in enumerate(notebook.cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "ex03_2_answer":
            wrong.preprocess_cell(cell, {"language": "python"}, index)
            assert "current = products.find_one(" in cell.source and "BEGIN SOLUTION" not in cell.source
    run(notebook, edition)
    errors = stopped_at(notebook)
    assert [grade_id for _, grade_id, _ in errors] == ["ex03_2_check"], errors
    output = errors[0][2]
    assert output["ename"] == "ExerciseNotPassed" and "Exercise 03.2" in output["evalue"]
    assert "a second projector had already applied" in output["evalue"]
