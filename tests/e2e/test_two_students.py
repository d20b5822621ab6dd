"""Notebook 01 for two students at once on the same servers: both pass; the same student twice is told why not.

Each run is the notebook executed headless (`jupyter nbconvert --execute`, as a kernel of its
own in a process of its own), with only `CQRS_STUDENT` telling the runs apart, as JupyterHub's
`JUPYTERHUB_USER` does.

The per-cell timeout is short on purpose. With ipykernel 7 a cell's execute_reply sometimes
reaches the client only when the client's wait for it times out (ipython/ipykernel#1554: the
kernel is idle, the reply sits in the socket), and two kernels starting at once make it likely.
Every cell of notebook 01 takes seconds, so 90 s bounds that stall without failing a run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cqrs_demo.classroom import naming
from cqrs_demo.classroom.registry import StackRegistry
from cqrs_demo.classroom.reset import reset
from cqrs_demo.connections import write_engine
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.runtime.processes import child_environment

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_meet_the_stack.ipynb"

pytestmark = pytest.mark.timeout(420)


def run_notebook(folder: Path, settings, student: str) -> subprocess.Popen:
    """Start executing a fresh copy of notebook 01, in `folder`, as `student`."""
    folder.mkdir()
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    (folder / NOTEBOOK.name).write_text(json.dumps(notebook))
    env = {**child_environment(settings), "CQRS_STUDENT": student}
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
         "--ExecutePreprocessor.timeout=90", NOTEBOOK.name],
        cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


@pytest.fixture
def students(base_settings, tmp_path):
    tag = uuid.uuid4().hex[:6]
    settings = base_settings.with_(run_dir=tmp_path / "run", mongo_url=None)
    names = {"alice": f"t-alice {tag}", "bob": f"t-bob {tag}", "carol": f"t-carol {tag}"}
    yield settings, names
    for name in names.values():
        reset(settings, name, progress=True)  # their checks too: test students, not a class


def test_two_students_run_notebook_01_at_the_same_time_and_both_pass(students, tmp_path):
    settings, names = students
    runs = {who: run_notebook(tmp_path / who, settings, names[who]) for who in ("alice", "bob")}
    outputs = {who: run.communicate(timeout=400)[0] for who, run in runs.items()}
    for who, run in runs.items():
        assert run.returncode == 0, f"{who}'s notebook 01 failed:\n{outputs[who][-4000:]}"

    engine = write_engine(settings)
    try:
        registry = StackRegistry(engine)
        for who in ("alice", "bob"):
            row = registry.find(naming.namespace_for(names[who], "nb01"))
            assert row is not None and row["student"] == names[who] and row["stopped_at"] is not None
            assert row["counters"]["committed"] >= 1 and row["counters"]["not_applied"] == 0, row["counters"]
    finally:
        engine.dispose()


def test_the_same_student_running_notebook_01_twice_gets_a_message_not_a_corrupted_run(students, tmp_path):
    settings, names = students
    first = LabStack("nb01", student=names["carol"], database_url=settings.database_url, run_dir=settings.run_dir)
    first.start()
    try:
        second = run_notebook(tmp_path / "carol", settings, names["carol"])
        output = second.communicate(timeout=400)[0]
        assert second.returncode != 0
        for expected in ("NotebookAlreadyRunning", f"notebook 'nb01' is already running for student '{names['carol']}'",
                         f"pid {os.getpid()} on host {socket.gethostname()}", "then run this cell again"):
            assert expected in output, output[-4000:]
        assert first.status()["healthy"].all(), "the first run was disturbed"
    finally:
        first.stop()
