"""What the tour's index says about a notebook: its title, its estimated time, its exercises."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cqrs_demo.course import tour

ROOT = Path(__file__).resolve().parents[2]


def notebook(*cells) -> nbformat.NotebookNode:
    return new_notebook(cells=list(cells))


def answer_cell(source: str = "prediction = ...") -> nbformat.NotebookNode:
    cell = new_code_cell(source)
    cell.metadata["nbgrader"] = {"solution": True, "grade": False, "locked": False, "grade_id": "a", "schema_version": 3}
    return cell


def test_the_title_is_the_first_heading_without_its_marks():
    nb = notebook(new_code_cell("x = 1"), new_markdown_cell("Some text\n## 02 · The write model\n# Later"))
    assert tour.title_of(nb, "fallback") == "02 · The write model"
    assert tour.title_of(notebook(new_markdown_cell("no heading")), "fallback") == "fallback"


def test_a_stated_time_wins_over_the_estimate():
    nb = notebook(new_markdown_cell("# 03\n\n*About 25 minutes.* Two exercises."), *[new_code_cell("") for _ in range(40)])
    assert tour.estimated_minutes(nb) == 25


@pytest.mark.parametrize("words, code_cells, exercises, minutes", [
    (0, 0, 0, 5),          # never less than five minutes
    (1000, 0, 0, 5),       # five minutes of reading
    (1001, 0, 0, 10),      # rounded up to the next five
    (400, 12, 0, 10),      # 2 + 6
    (1168, 16, 2, 25),     # notebook 03's size (its two answer cells among its code cells): what its author states
])
def test_the_estimate_counts_reading_running_and_exercises(words, code_cells, exercises, minutes):
    cells = [new_markdown_cell(" ".join(["word"] * words))]
    cells += [answer_cell() for _ in range(exercises)]
    cells += [new_code_cell("x = 1") for _ in range(code_cells - exercises)]
    nb = notebook(*cells)
    assert tour.exercise_count(nb) == exercises
    assert tour.estimated_minutes(nb) == minutes


def test_the_tour_is_the_numbered_notebooks_without_the_instructors_own():
    names = [path.name for path in tour.course_notebooks(ROOT / "notebooks")]
    assert names == sorted(names) and names[0].startswith("01_")
    assert "00_instructor.ipynb" not in names
    assert len(names) == len(list((ROOT / "notebooks").glob("[0-9]*.ipynb"))) - 1


def test_every_notebook_of_the_course_has_a_title_and_a_time():
    for path in tour.course_notebooks(ROOT / "notebooks"):
        nb = nbformat.read(path, as_version=4)
        assert tour.title_of(nb, "").startswith(path.stem[:2]), f"{path.name} has no numbered heading"
        assert 5 <= tour.estimated_minutes(nb) <= 90, path.name


def test_the_index_links_every_page_and_marks_the_one_that_failed():
    chapters = [
        tour.Chapter(Path("notebooks/01_a.ipynb"), "01_a.html", "01 · A <b>", 10, 0, 12.3),
        tour.Chapter(Path("notebooks/02_b.ipynb"), "02_b.html", "02 · B", 20, 2, 40.0, error="KeyError: 'x'"),
    ]
    page = tour.index_page(chapters, "2024-05-01 10:00")
    assert '<a href="01_a.html">01 · A &lt;b&gt;</a>' in page
    assert '<a href="02_b.html">02 · B</a>' in page
    assert "about 30 minutes in all" in page
    assert "stopped by an error: KeyError: &#x27;x&#x27;" in page
    assert page.count("stopped by an error") == 1


def test_a_missing_renderer_says_how_to_fetch_it(tmp_path):
    with pytest.raises(tour.TourError, match="make node"):
        tour.copy_renderer(tmp_path / "node_modules", tmp_path / "out")
