"""`make tour` for one notebook, read in a headless Chromium with the network switched off.

Notebook 01 runs against the real stack; its page must show the product form's widgets drawn
from their saved state (the Create button visible), with every script, style and font loaded from
the tour's own folder: any request that leaves it, or fails, fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cqrs_demo.course import tour
from jupyter_browser import find_chromium, launch_chromium
from node_packages import REPO, node_modules

NOTEBOOK = REPO / "notebooks" / "01_meet_the_stack.ipynb"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[tour.Chapter]]:
    out = tmp_path_factory.mktemp("tour")
    chapters = tour.build([NOTEBOOK], out, node_modules(), progress=lambda line: None)
    return out, chapters


def test_the_notebook_runs_and_the_index_lists_it_with_its_time(built):
    out, [chapter] = built
    assert chapter.error is None, f"notebook 01 stopped: {chapter.error}"
    assert chapter.title == "01 · Meet the stack"
    index = (out / "index.html").read_text()
    assert f'<a href="{NOTEBOOK.stem}.html">01 · Meet the stack</a>' in index
    assert f"{chapter.minutes} min" in index
    page = (out / chapter.page).read_text()
    assert "application/vnd.jupyter.widget-state+json" in page, "the page carries no saved widget state"
    assert not re.search(r'src="https?://', page), "the page loads a script from the network"


def test_the_widgets_render_offline_from_their_saved_state(built, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    chromium = find_chromium()
    if chromium is None:
        pytest.skip("no Chromium binary found (apt-get install chromium, or set CHROMIUM_PATH)")
    out, [chapter] = built
    left_the_folder, failed = [], []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium, tmp_path / "profile")
        try:
            browser.set_offline(True)

            def only_files(route):
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    left_the_folder.append(route.request.url)
                    route.abort()

            browser.route("**/*", only_files)
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto((out / "index.html").as_uri())
            page.get_by_role("link", name=chapter.title).click()
            page.wait_for_url(re.compile(re.escape(chapter.page) + "$"))
            form = page.locator(".cqrs-product-form")
            expect(form.get_by_role("button", name="Create")).to_be_visible(timeout=30_000)
            expect(form.locator("input").first).to_have_value(re.compile(r"\d+"))
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()
    assert left_the_folder == [], f"the page asked the network for {left_the_folder}"
    assert failed == [], f"requests that failed: {failed}"
