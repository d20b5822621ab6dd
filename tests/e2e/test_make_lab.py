"""`make lab`, the README's first command: it serves JupyterLab, as root too, and prints its URL.

JupyterLab refuses to start as root without `--allow-root`, and must not be given it otherwise.
The first test runs the real target on a free port and waits for the printed URL to answer;
the second reads the command make would run, with `id -u` answering 0 and then 1000.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from cqrs_demo.polling import wait_until
from cqrs_demo.runtime.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def _jupyter_dirs(tmp_path: Path) -> dict[str, str]:
    """Jupyter's own folders in the test's temporary directory, so no global state is read or written."""
    dirs = {name: tmp_path / name.lower() for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR")}
    for path in dirs.values():
        path.mkdir()
    return {name: str(path) for name, path in dirs.items()}


def test_make_lab_serves_jupyterlab_and_prints_its_url(tmp_path):
    port = free_port()
    env = {**os.environ, **_jupyter_dirs(tmp_path)}
    env.pop("JUPYTER_TOKEN", None)
    lab = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"LAB_ARGS=--ServerApp.port={port} --ServerApp.port_retries=0"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, start_new_session=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(lab.stdout), daemon=True)
    reader.start()
    url = re.compile(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)")

    def printed_url():
        if lab.poll() is not None:
            raise AssertionError(f"make lab exited with {lab.returncode}:\n{''.join(output)}")
        return next((found for line in list(output) if (found := url.search(line))), None)

    try:
        found = wait_until(printed_url, timeout=120, interval=0.25, what="make lab to print its URL")
        response = requests.get(f"http://127.0.0.1:{port}/api/status", params={"token": found[1]}, timeout=10)
        assert response.status_code == 200, response.text
        assert "Running as root is not recommended" not in "".join(output)
    finally:
        os.killpg(lab.pid, signal.SIGTERM)  # make, and the JupyterLab it started, in the group we gave them
        try:
            lab.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait(10)


@pytest.mark.parametrize("uid, allowed", [("0", True), ("1000", False)])
def test_make_lab_allows_root_only_when_run_as_root(tmp_path, uid, allowed):
    fake_id = tmp_path / "id"
    fake_id.write_text(f"#!/bin/sh\necho {uid}\n")
    fake_id.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    planned = subprocess.run(["make", "--no-print-directory", "-n", "lab"], cwd=REPO, env=env,
                             capture_output=True, text=True, check=True).stdout
    assert "jupyter lab" in planned and "--ServerApp.open_browser=False" in planned
    assert ("--allow-root" in planned) is allowed, planned
