"""The notebooks and the exercise catalog agree, and the student's edition hides every solution.

Reads the notebooks as files; runs nothing. (Executing the editions is in
tests/integration/test_student_edition.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from cqrs_demo.course import all_exercises
from cqrs_demo.course.edition import EditionError, build, instructor_only, student_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
GRADE_ID = re.compile(r"^ex(\d\d)_(\d+)_(answer|check)$")
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def exercise_cells(notebook) -> list[tuple[int, str, str, object]]:
    """(index, exercise id, role, cell) for each cell carrying nbgrader metadata."""
    found = []
    for index, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader")
        if meta:
            match = GRADE_ID.match(meta.get("grade_id", ""))
            assert match, f"cell {index}: grade_id {meta.get('grade_id')!r} is not exNN_k_answer or exNN_k_check"
            found.append((index, f"{match.group(1)}.{match.group(2)}", match.group(3), cell))
    return found


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_each_exercise_cell_belongs_to_a_declared_exercise_of_its_notebook(path):
    notebook = nbformat.read(path, as_version=4)
    for index, exercise_id, role, cell in exercise_cells(notebook):
        assert exercise_id in all_exercises(), f"{path.name} cell {index}: no exercise {exercise_id} is declared"
        assert all_exercises()[exercise_id].notebook == path.stem
        meta = cell.metadata["nbgrader"]
        if role == "answer":
            assert meta["solution"] and not meta["grade"], f"cell {index} must be a solution cell"
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        else:
            assert meta["grade"] and meta["locked"] and not meta["solution"], f"cell {index} must be a locked test cell"
            assert f'exercise("{exercise_id}").check(' in cell.source


def test_each_declared_exercise_has_an_answer_cell_then_a_check_cell():
    for exercise_id, declared in all_exercises().items():
        path = NOTEBOOKS / f"{declared.notebook}.ipynb"
        assert path.exists(), f"exercise {exercise_id} names a notebook that does not exist: {path.name}"
        cells = [(index, role) for index, found, role, _ in exercise_cells(nbformat.read(path, as_version=4))
                 if found == exercise_id]
        roles = [role for _, role in cells]
        assert roles == ["answer", "check"], f"exercise {exercise_id} in {path.name}: cells {cells}"


@pytest.mark.parametrize("path", PATHS, ids=[path.stem for path in PATHS])
def test_the_students_edition_holds_no_solution_and_no_output(path):
    instructor = nbformat.read(path, as_version=4)
    student = student_notebook(instructor)
    assert len(student.cells) == len(instructor.cells)
    for index, mine, theirs in zip(range(len(student.cells)), instructor.cells, student.cells):
        assert "SOLUTION" not in theirs.source
        for solution_line in _solution_lines(mine.source):
            assert solution_line not in theirs.source, f"cell {index} of the student's edition shows the solution"
        if theirs.cell_type == "code":
            assert theirs.outputs == [] and theirs.execution_count is None
        meta = theirs.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert theirs.metadata["editable"] is False and theirs.metadata["deletable"] is False
        if meta.get("solution"):
            assert "\n    ...\n" in f"\n{theirs.source}\n", "the solution became the `...` stub"
    assert "SOLUTION" in "".join(cell.source for cell in instructor.cells) or not exercise_cells(instructor)


def _solution_lines(source: str) -> list[str]:
    lines, inside = [], False
    for line in source.splitlines():
        if "BEGIN SOLUTION" in line:
            inside = True
        elif "END SOLUTION" in line:
            inside = False
        elif inside and line.strip() and line.strip() not in ("...",):
            lines.append(line)
    return lines


def test_solution_markers_outside_a_solution_cell_stop_the_build(tmp_path):
    notebook = new_notebook(cells=[new_code_cell("x = (\n    ### BEGIN SOLUTION\n    1\n    ### END SOLUTION\n)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    nbformat.write(notebook, tmp_path / "99_bad.ipynb")
    with pytest.raises(EditionError, match="99_bad.ipynb: ClearSolutions"):
        build(tmp_path, tmp_path / "student")


def test_build_writes_every_notebook_but_the_instructors(tmp_path):
    written = build(NOTEBOOKS, tmp_path)
    assert sorted(w.path.name for w in written) == [path.name for path in PATHS if path.name != "00_instructor.ipynb"]
    assert instructor_only(nbformat.read(NOTEBOOKS / "00_instructor.ipynb", as_version=4))
    assert sum(w.exercises for w in written) == len(all_exercises())


def test_the_authoring_guides_examples_are_python_and_its_template_works():
    guide = (NOTEBOOKS / "AUTHORING.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert len(blocks) >= 8
    for block in blocks:
        compile(block, "AUTHORING.md", "exec")
    template = next(block for block in blocks if "DEDUP_OFF = Exercise(" in block)
    namespace: dict = {}
    exec(template, namespace)
    declared = namespace["DEDUP_OFF"]
    counters = dict.fromkeys(("events lost", "events applied twice", "events applied out of order"), 0)
    broken = {**counters, "events applied twice": 2}
    assert declared.judge("events applied twice", broken=broken, fixed=counters).passed
    assert not declared.judge(declared.wrong_answer, broken=broken, fixed=counters).passed
