"""Starting processes the one way: settings handed over, own log, dies with its parent unless detached."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from cqrs_demo import config
from cqrs_demo.polling import wait_until
from cqrs_demo.runtime import processes

PYTHON = sys.executable
# Starts a sleeping child with `processes.start`, prints its pid, and exits (so the child is orphaned).
PARENT = """
import sys
from cqrs_demo.runtime import processes
child = processes.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], sys.argv[1],
                        detach=sys.argv[2] == "detach")
print(child.pid, flush=True)
"""


@pytest.fixture
def settings(tmp_path):
    # Nothing here needs the servers: the settings are only handed over and read back.
    return config.from_environment({"CQRS_NAMESPACE": "handed_over", "CQRS_STUDENT": "ada",
                                    "CQRS_PROJECTOR_PREFETCH": "7", "CQRS_RUN_DIR": str(tmp_path)})


def test_a_child_reads_exactly_the_settings_its_parent_holds(settings, tmp_path):
    read_back = "from cqrs_demo import config; print(config.from_environment().model_dump_json())"
    child = processes.start("reader", [PYTHON, "-c", read_back], tmp_path / "reader.log", settings)
    assert child.wait(60), child.log()
    assert child.popen.returncode == 0, child.log()
    assert config.Settings.model_validate_json(child.log().strip()) == settings


def _child_that_on_sigterm(does: str, settings, tmp_path) -> processes.Process:
    script = ("import signal, sys, time\n"
              f"signal.signal(signal.SIGTERM, {does})\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)")
    child = processes.start("child", [PYTHON, "-c", script], tmp_path / "child.log", settings)
    wait_until(lambda: "ready" in child.log(), 30, what="the child to set up its SIGTERM handling")
    return child


def test_stop_asks_with_sigterm_first(settings, tmp_path):
    child = _child_that_on_sigterm("lambda *_: (print('finishing what I hold', flush=True), sys.exit(0))",
                                   settings, tmp_path)
    child.stop()
    assert not child.alive()
    assert child.popen.returncode == 0 and "finishing what I hold" in child.log()


def test_stop_insists_with_sigkill_after_the_grace_period(settings, tmp_path):
    child = _child_that_on_sigterm("signal.SIG_IGN", settings, tmp_path)
    child.stop(grace=0.5)
    assert not child.alive() and child.popen.returncode == -signal.SIGKILL


def _orphan(tmp_path, mode: str) -> processes.Process:
    parent = subprocess.run([PYTHON, "-c", PARENT, str(tmp_path / f"{mode}.log"), mode],
                            capture_output=True, text=True, timeout=60)
    assert parent.returncode == 0, parent.stderr
    return processes.Process("sleeper", int(parent.stdout.strip()))  # as `cqrs-demo down` knows it: a pid


def test_an_attached_child_dies_with_its_parent(tmp_path):
    orphan = _orphan(tmp_path, "attached")
    try:
        assert orphan.wait(10), "the child outlived the process that started it"
    finally:
        orphan.stop()


def test_a_detached_child_outlives_its_parent_until_stopped(tmp_path):
    orphan = _orphan(tmp_path, "detach")
    try:
        assert not orphan.wait(1), "a detached child must keep running"
        assert orphan.alive()
    finally:
        orphan.stop(grace=5)
    assert not orphan.alive()
