"""Notebook 01 in a real browser: JupyterLab, headless Chromium, every cell run from the Run menu.

What nbval cannot see is checked here: that the widgets render in JupyterLab. After "Run > Run All
Cells" the product command form (with its Create button) and the side-by-side view (with its
table) must be on the page, and no cell may show a traceback. A screenshot is kept in
build/artifacts/notebook01.png, whether the test passes or fails, with JupyterLab's log, the
executed notebook and the stack's logs beside it.

The repository's notebook is never opened: the test copies it, without its outputs, into a
temporary directory that is JupyterLab's root, so the stack's run directory lands there too.
The kernel inherits the session's student (the root conftest gives each session one of its own),
so the notebook's stack runs in that student's namespace for nb01: a run of notebook 01 elsewhere
against the same servers at the same time (a second `make test`, a student's JupyterLab) is
another student's, and never meets this one.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from jupyter_browser import JupyterLab, find_chromium, launch_chromium

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01_meet_the_stack.ipynb"
ARTIFACTS = REPO / "build" / "artifacts"
SCREENSHOT = ARTIFACTS / "notebook01.png"

LOAD_TIMEOUT = 90_000  # ms for JupyterLab to load and the kernel to start
RUN_TIMEOUT = 120  # seconds for every cell, the stack's start-up included
SHOW_TIMEOUT = 15_000  # ms for a widget view to render once its cell has run
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'

pytestmark = pytest.mark.timeout(240)

# Prompts of every code cell, and the text of every stderr output that shows a traceback.
CELL_STATE_JS = """
() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return {prompts: [], tracebacks: []};
  const prompts = [...panel.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(
    cell => (cell.querySelector('.jp-InputArea-prompt')?.textContent || '').trim());
  const tracebacks = [...panel.querySelectorAll('%s')]
    .map(node => node.textContent).filter(text => text.includes('Traceback'));
  return {prompts, tracebacks};
}
""" % STDERR


def copy_without_outputs(source: Path, target: Path) -> int:
    """Copy the notebook with outputs, execution counts and saved widget state removed; return its code cell count."""
    notebook = json.loads(source.read_text())
    code_cells = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            code_cells += 1
            cell["outputs"] = []
            cell["execution_count"] = None
    notebook.get("metadata", {}).pop("widgets", None)
    target.write_text(json.dumps(notebook, indent=1))
    return code_cells


@pytest.fixture
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no Chromium binary found (apt-get install chromium chromium-driver, or set CHROMIUM_PATH)")
    return binary


@pytest.fixture
def jupyterlab(tmp_path):
    root = tmp_path / "lab"
    root.mkdir()
    lab = JupyterLab(root_dir=root, home=tmp_path / "jupyter")
    try:
        yield lab.start(timeout=60)
    finally:
        lab.stop()


def run_all_cells(page, attempts: int = 2) -> None:
    """Run > Run All Cells, from the menu bar; again if no cell was queued (a click lost to a busy UI)."""
    for attempt in range(attempts):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            prompts = page.evaluate(CELL_STATE_JS)["prompts"]
            if any(prompt != "[ ]:" for prompt in prompts):
                return
            page.wait_for_timeout(250)
        print(f"Run All Cells queued no cell (attempt {attempt + 1})")
    raise AssertionError("Run > Run All Cells did not start any cell")


def wait_until_run(page, lab: JupyterLab, timeout: float) -> dict:
    """Wait until the run has ended: no cell queued or running ("[*]:") and the kernel idle, twice in a row.

    Run All marks every code cell "[*]:" at once; a cell that raises ends the run, and the cells
    after it go back to "[ ]:". So this returns for a complete run and for one stopped by an error.
    """
    deadline = time.monotonic() + timeout
    ended_polls = 0
    while True:
        state = page.evaluate(CELL_STATE_JS)
        running = any(prompt == "[*]:" for prompt in state["prompts"])
        idle = (states := lab.kernel_states()) and all(s == "idle" for s in states)
        ended_polls = ended_polls + 1 if idle and not running else 0
        if ended_polls >= 2:  # half a second apart, so not the moment between two cells
            return state
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the notebook did not finish within {timeout:g}s: prompts {state['prompts']}, "
                f"kernels {lab.kernel_states()}\n--- JupyterLab log ---\n{lab.log()}"
            )
        page.wait_for_timeout(500)


def save_and_read(page, path: Path) -> dict:
    """Save the notebook (Ctrl+S), wait until JupyterLab says it is saved, and read it from disk.

    The file is read directly, not through the contents API: a GET that meets a save half-written
    makes jupyter_server "restore" the notebook from its backup, and the save then fails.
    """
    from playwright.sync_api import expect

    dirty_tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-dirty")
    for attempt in range(2):
        page.keyboard.press("Control+s")
        try:
            expect(dirty_tab).to_have_count(0, timeout=15_000)
            break
        except AssertionError:
            if attempt:
                raise AssertionError("JupyterLab did not save the notebook") from None
    deadline = time.monotonic() + 10
    while True:  # an autosave may be writing it right now
        try:
            return json.loads(path.read_text())
        except ValueError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def error_outputs(notebook: dict) -> list[str]:
    """Every error output (a SyntaxError, say, which shows no "Traceback"), with its cell's source."""
    return [
        f"{output.get('ename')}: {output.get('evalue')}\nin the cell:\n{''.join(cell['source'])}"
        for cell in notebook["cells"]
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]


def take_screenshot(page, path: Path) -> None:
    """The page with the product form at the top (the side-by-side view is two cells below), if it is there."""
    try:
        page.evaluate(
            "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .cqrs-product-form')"
            "?.closest('.jp-Cell')?.scrollIntoView({block: 'start'})"
        )
        page.wait_for_timeout(500)  # let the scroll settle
        page.screenshot(path=str(path))
    except Exception as exc:  # a failed picture must not hide the test's own failure
        print(f"no screenshot: {exc}")


def keep_artifacts(lab: JupyterLab, name: str) -> None:
    """Beside the screenshot: JupyterLab's log, the notebook as last saved, and the stack's logs."""
    shutil.copy(lab.log_path, ARTIFACTS / "notebook01-jupyterlab.log")
    if (lab.root_dir / name).exists():
        shutil.copy(lab.root_dir / name, ARTIFACTS / "notebook01-executed.ipynb")
    run_logs = ARTIFACTS / "notebook01-run"
    shutil.rmtree(run_logs, ignore_errors=True)
    for log in (lab.root_dir / ".run").glob("**/*.log"):
        target = run_logs / log.relative_to(lab.root_dir / ".run")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, target)


def test_notebook_01_renders_its_widgets_in_jupyterlab(chromium, jupyterlab, tmp_path):
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: pip install playwright (it drives the machine's Chromium; "
                    "`playwright install` is not needed)")

    assert NOTEBOOK.exists(), f"{NOTEBOOK} is missing"
    code_cells = copy_without_outputs(NOTEBOOK, jupyterlab.root_dir / NOTEBOOK.name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)

    timings: dict[str, float] = {}
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium, tmp_path / "chromium-profile")
        page = browser.pages[0] if browser.pages else browser.new_page()
        page.set_default_timeout(60_000)
        try:
            page.goto(jupyterlab.url(f"lab/tree/{NOTEBOOK.name}"), wait_until="domcontentloaded")
            notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
            expect(notebook).to_be_visible(timeout=LOAD_TIMEOUT)
            expect(notebook.locator(".jp-CodeCell")).to_have_count(code_cells, timeout=LOAD_TIMEOUT)
            # The kernel is started and connected: the status bar says "Python 3 (ipykernel) | Idle" (it
            # says "Initializing", then "Connecting" before). The execution indicator in the notebook's
            # toolbar is no sign of it: its data-status is "idle" from the start.
            kernel_status = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$"))
            expect(kernel_status).to_be_visible(timeout=LOAD_TIMEOUT)
            timings["kernel ready"] = time.monotonic() - started
            run_all_cells(page)

            state = wait_until_run(page, jupyterlab, RUN_TIMEOUT)
            timings["cells run"] = time.monotonic() - started
            saved = save_and_read(page, jupyterlab.root_dir / NOTEBOOK.name)

            assert not state["tracebacks"], "a cell shows a traceback:\n" + "\n\n".join(state["tracebacks"])
            errors = error_outputs(saved)
            assert not errors, "a cell ended in an error:\n" + "\n\n".join(errors)
            assert all(re.fullmatch(r"\[\d+\]:", prompt) for prompt in state["prompts"]), (
                f"not every cell ran: {state['prompts']}"
            )

            form = notebook.locator(".cqrs-product-form").first
            expect(form).to_be_visible(timeout=SHOW_TIMEOUT)
            expect(form.get_by_role("button", name="Create", exact=True)).to_be_visible(timeout=SHOW_TIMEOUT)

            side_by_side = notebook.locator(".cqrs-side-by-side").first
            expect(side_by_side).to_be_visible(timeout=SHOW_TIMEOUT)
            table = side_by_side.locator("table").first
            expect(table).to_be_visible(timeout=SHOW_TIMEOUT)
            expect(table.locator("thead")).to_contain_text("PostgreSQL", timeout=SHOW_TIMEOUT)
            expect(table.locator("thead")).to_contain_text("MongoDB", timeout=SHOW_TIMEOUT)
            assert table.locator("tbody tr").count() >= 1, "the side-by-side table has no rows"
            timings["checked"] = time.monotonic() - started
        finally:
            take_screenshot(page, SCREENSHOT)
            browser.close()
            try:
                keep_artifacts(jupyterlab, NOTEBOOK.name)
            except OSError as exc:
                print(f"artifacts not kept: {exc}")
            print("seconds since the browser started:", {phase: round(t, 1) for phase, t in timings.items()})
