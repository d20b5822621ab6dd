"""The course as a folder of web pages an instructor reads before class, online or not.

`make tour` runs every notebook of the course against the real stack and writes, under
`build/tour/`, one HTML page per notebook with its outputs, and `index.html` listing them with
each one's title and estimated time. Widgets (the forms, the side-by-side views) are saved as
they were when their cell ran and drawn again by the page from that saved state, so the page
shows what the student sees, not blank boxes.

Why nbclient, and not `jupyter nbconvert --execute`: the notebook is executed here with
nbclient's `store_widget_state`, which records every widget's state as the kernel sends it;
the export is nbconvert's HTML exporter with its widget renderer and require.js pointed at
local copies beside the pages, fetched by npm into `build/node/` (`make node`), never committed.
Nothing in a page asks the network for anything.

The notebooks run as the student `tour` (unless CQRS_STUDENT names another), so their stacks
never meet the instructor's own runs of the same notebooks. Notebooks for the instructor alone
(`00_instructor`, marked `instructor_only`) are not part of the course, nor of its tour.

    python -m cqrs_demo.course.tour [NOTEBOOK ...] [--out build/tour]
"""

from __future__ import annotations

import argparse
import html
import math
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter
from nbformat import NotebookNode

from cqrs_demo import config
from cqrs_demo.course.edition import instructor_only
from cqrs_demo.runtime.kernel import this_interpreter
from cqrs_demo.runtime.processes import child_environment

NODE_MODULES = Path("build/node/node_modules")
HTML_MANAGER = Path("@jupyter-widgets/html-manager/dist")
REQUIRE_JS = Path("requirejs/require.js")
STATIC = "_static"
FONT_SUFFIXES = {".woff", ".woff2", ".ttf", ".eot", ".svg"}
CELL_TIMEOUT = 600  # seconds; notebook 08 runs short benchmarks in single cells
STUDENT = "tour"

# How long a notebook takes a student when it does not say ("*About 25 minutes.*"): reading
# at 200 words a minute, half a minute per code cell to run it and look at what it shows, and
# five minutes per exercise. Calibrated on notebook 03, whose author's estimate it matches.
WORDS_PER_MINUTE = 200
MINUTES_PER_CODE_CELL = 0.5
MINUTES_PER_EXERCISE = 5
STATED_MINUTES = re.compile(r"\*About (\d+) minutes\.\*")


class TourError(RuntimeError):
    """The tour cannot be built (no renderer fetched, no notebook found); the message says why."""


@dataclass(frozen=True)
class Chapter:
    """One notebook of the tour, as the index lists it."""

    source: Path
    page: str
    title: str
    minutes: int
    exercises: int
    seconds_to_run: float
    error: str | None = None


# -- what the index says about a notebook -------------------------------------------------------

def title_of(notebook: NotebookNode, fallback: str) -> str:
    """The first Markdown heading, without its `#`s."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def exercise_count(notebook: NotebookNode) -> int:
    """Answer cells, in nbgrader's metadata (see `cqrs_demo.course.edition`)."""
    return sum(1 for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get("solution"))


def estimated_minutes(notebook: NotebookNode) -> int:
    """The time the notebook states, else the estimate above rounded up to five minutes."""
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    stated = STATED_MINUTES.search(text)
    if stated:
        return int(stated.group(1))
    code_cells = sum(1 for cell in notebook.cells if cell.cell_type == "code")
    minutes = (len(text.split()) / WORDS_PER_MINUTE + code_cells * MINUTES_PER_CODE_CELL
               + exercise_count(notebook) * MINUTES_PER_EXERCISE)
    return max(5, math.ceil(minutes / 5) * 5)


# -- running and rendering -----------------------------------------------------------------------

def execute(notebook: NotebookNode, cwd: Path, timeout: int = CELL_TIMEOUT) -> str | None:
    """Run every cell in place, keeping outputs and widget state; the first error's summary, or None.

    A cell that fails does not stop the tour: the page shows the notebook up to that cell, with
    the error, and the index marks it.
    """
    env = child_environment()
    env.setdefault(config.variable("student"), STUDENT)
    with tempfile.TemporaryDirectory(prefix="tour-kernel-") as kernel_dir:
        kernel = this_interpreter(Path(kernel_dir))
        client = NotebookClient(
            notebook, km=kernel, timeout=timeout,
            resources={"metadata": {"path": str(cwd)}}, store_widget_state=True,
        )
        try:
            client.execute(env=env)
        except CellExecutionError as exc:
            return f"{exc.ename}: {exc.evalue}"
        finally:
            # nbclient leaves a kernel it was handed running; its stack's processes die with it.
            if kernel.has_kernel:
                kernel.shutdown_kernel()
    return None


def exporter() -> HTMLExporter:
    """nbconvert's exporter with every script it loads taken from beside the pages."""
    return HTMLExporter(
        template_name="lab",
        widget_renderer_url=f"{HTML_MANAGER}/embed-amd.js",
        require_js_url=f"{STATIC}/require.js",
        # The course has no mathematics, so MathJax (a CDN script by default) is not loaded at
        # all: an empty source fetches nothing.
        mathjax_url="",
    )


def copy_renderer(node_modules: Path, out: Path) -> None:
    """The widget renderer and the fonts it refers to, and require.js, into `out`.

    The renderer keeps its npm path (`@jupyter-widgets/html-manager/dist/`) under `out`: it finds
    its font files relative to the require.js names of its modules, which resolve against the
    page's folder, some under `@jupyter-widgets/html-manager/dist/` and some under
    `@jupyter-widgets/`, so the fonts are in both.
    """
    manager, require = node_modules / HTML_MANAGER, node_modules / REQUIRE_JS
    missing = [str(path) for path in (manager / "embed-amd.js", require) if not path.exists()]
    if missing:
        raise TourError(f"{', '.join(missing)} not found: run `make node` (npm fetches them into build/node/)")
    widgets = out / HTML_MANAGER.parts[0]
    shutil.rmtree(widgets, ignore_errors=True)
    shutil.copytree(manager, out / HTML_MANAGER, ignore=shutil.ignore_patterns("*.map"))
    for font in manager.iterdir():
        if font.suffix in FONT_SUFFIXES:
            shutil.copy(font, widgets / font.name)
    (out / STATIC).mkdir(exist_ok=True)
    shutil.copy(require, out / STATIC / "require.js")


def render(source: Path, out: Path, html_exporter: HTMLExporter) -> Chapter:
    """Run one notebook and write its page; returns what the index says about it."""
    notebook = nbformat.read(source, as_version=4)
    started = time.monotonic()
    error = execute(notebook, cwd=source.parent.resolve())
    seconds = time.monotonic() - started
    body, _ = html_exporter.from_notebook_node(notebook, resources={"metadata": {"name": title_of(notebook, source.stem)}})
    page = f"{source.stem}.html"
    (out / page).write_text(body, encoding="utf-8")
    return Chapter(source, page, title_of(notebook, source.stem), estimated_minutes(notebook),
                   exercise_count(notebook), round(seconds, 1), error)


# -- the index -----------------------------------------------------------------------------------

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CQRS Workbench: the course</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
  table {{ border-collapse: collapse; width: 100%; }}
  th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ddd; }}
  td.number {{ text-align: right; }}
  .failed {{ color: #b00020; }}
</style>
</head>
<body>
<h1>CQRS Workbench: the course</h1>
<p>{count} notebooks, about {total} minutes in all. Each page is the notebook as it ran on {ran_at},
with its outputs and widgets as they were at the end of the run.</p>
<table>
<thead><tr><th>Notebook</th><th>Estimated time</th><th>Exercises</th><th>Ran in</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def index_page(chapters: list[Chapter], ran_at: str) -> str:
    rows = []
    for chapter in chapters:
        status = "" if chapter.error is None else (
            f'<br><span class="failed">stopped by an error: {html.escape(chapter.error)}</span>')
        rows.append(
            f'<tr><td><a href="{html.escape(chapter.page)}">{html.escape(chapter.title)}</a>{status}</td>'
            f'<td class="number">{chapter.minutes} min</td><td class="number">{chapter.exercises}</td>'
            f'<td class="number">{chapter.seconds_to_run:.0f} s</td></tr>')
    return INDEX.format(count=len(chapters), total=sum(c.minutes for c in chapters),
                        ran_at=html.escape(ran_at), rows="\n".join(rows))


def build(notebooks: list[Path], out: Path, node_modules: Path = NODE_MODULES, progress=print) -> list[Chapter]:
    """Run `notebooks` in order and write their pages, the renderer and `index.html` into `out`."""
    if not notebooks:
        raise TourError("no notebooks to run")
    out.mkdir(parents=True, exist_ok=True)
    copy_renderer(node_modules, out)
    html_exporter = exporter()
    chapters = []
    for source in notebooks:
        progress(f"running {source} ...")
        chapter = render(source, out, html_exporter)
        progress(f"  {out / chapter.page}  ({chapter.seconds_to_run:.0f} s"
                 + ("" if chapter.error is None else f"; stopped by {chapter.error}") + ")")
        chapters.append(chapter)
    (out / "index.html").write_text(index_page(chapters, time.strftime("%Y-%m-%d %H:%M")), encoding="utf-8")
    return chapters


def course_notebooks(folder: Path) -> list[Path]:
    """The numbered notebooks of the course, in order, without those for the instructor alone."""
    return [path for path in sorted(folder.glob("[0-9]*.ipynb"))
            if not instructor_only(nbformat.read(path, as_version=4))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook in notebooks/")
    parser.add_argument("--out", type=Path, default=Path("build/tour"))
    parser.add_argument("--node-modules", type=Path, default=NODE_MODULES)
    arguments = parser.parse_args(argv)
    notebooks = arguments.notebooks or course_notebooks(Path("notebooks"))
    try:
        chapters = build(notebooks, arguments.out, arguments.node_modules)
    except TourError as exc:
        parser.exit(1, f"make tour: {exc}\n")
    failed = [chapter for chapter in chapters if chapter.error]
    print(f"open {arguments.out / 'index.html'} in a browser to preview the course")
    if failed:
        print(f"{len(failed)} notebook(s) stopped by an error: {', '.join(c.source.name for c in failed)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
