"""A class on the real servers: two fake students' stacks, the instructor's view of them, the reset.

Each test's students carry a random tag, and every question is asked about them only, so other
tests (and other people's classes) on the same servers neither disturb nor are disturbed.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from types import SimpleNamespace

import pika
import pika.exceptions
import pytest
import sqlalchemy as sa

from cqrs_demo.classroom import naming
from cqrs_demo.classroom.census import class_status
from cqrs_demo.classroom.registry import StackRegistry
from cqrs_demo.classroom.reset import ResetReport, _clear_progress, reset
from cqrs_demo.connections import amqp_connection, write_engine
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.polling import wait_until
from cqrs_demo.runtime.processes import child_environment

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def classroom(base_settings, tmp_path):
    """Two students of a class of their own; every stack started here is stopped and reset afterwards."""
    tag = uuid.uuid4().hex[:6]
    settings = base_settings.with_(run_dir=tmp_path / "run", mongo_url=None)
    started: list[LabStack] = []

    def start(student: str, notebook: str = "nb01", products: int = 0) -> LabStack:
        stack = LabStack(notebook, student=student, database_url=settings.database_url, run_dir=settings.run_dir)
        started.append(stack)
        stack.start()
        client = WorkbenchClient.for_stack(stack)
        for index in range(products):
            assert client.create_product(f"P{index}", "1.50", 3, f"SKU-{tag}-{notebook}-{index}").status == 201
        if products:
            assert wait_until_equal(stack.engine, stack.read_db, 30)["equal"]
        return stack

    room = SimpleNamespace(settings=settings, alice=f"t-alice {tag}", bob=f"t-bob {tag}", start=start)
    yield room
    for stack in started:
        stack.stop()
    for student in (room.alice, room.bob):
        reset(settings, student)


def rows_of(students: list[dict], name: str) -> dict:
    (row,) = [r for r in students if r["student"] == name]
    return row


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cqrs_demo", *args], env=child_environment(settings),
                          capture_output=True, text=True, timeout=120)


def schema_exists(engine, name: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(sa.text("SELECT count(*) FROM pg_namespace WHERE nspname = :n"), {"n": name}))


def queue_exists(settings, name: str) -> bool:
    connection = amqp_connection(settings)
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    finally:
        if connection.is_open:
            connection.close()


def test_status_shows_each_student_their_stacks_states_and_counters(classroom):
    alice = classroom.start(classroom.alice, products=3)
    bob = classroom.start(classroom.bob, products=2)
    bob.stop()

    students, stacks = class_status(classroom.settings)
    row = rows_of(students, classroom.alice)
    assert (row["notebooks"], row["running"], row["stopped"], row["committed"], row["not_applied"]) == ("nb01", 1, 0, 3, 0)
    row = rows_of(students, classroom.bob)
    assert (row["running"], row["stopped"], row["committed"], row["not_applied"]) == (0, 1, 2, 0)
    (mine,) = [s for s in stacks if s["student"] == classroom.alice]
    assert (mine["namespace"], mine["host"], mine["pid"]) == (alice.settings.namespace, socket.gethostname(), os.getpid())

    alice.pause("projector")  # the kernel still holds the namespace; its projector is not consuming
    students, _ = class_status(classroom.settings, student=classroom.alice)
    assert [r["student"] for r in students] == [classroom.alice]
    assert students[0]["partly running"] == 1
    _, stacks = class_status(classroom.settings, student=classroom.alice)
    assert stacks[0]["detail"] == "projector not working"
    alice.resume("projector")

    printed = cli(classroom.settings, "class", "status", "--student", classroom.alice)
    assert printed.returncode == 0, printed.stderr
    assert classroom.alice in printed.stdout and alice.settings.namespace in printed.stdout
    assert "running" in printed.stdout and classroom.bob not in printed.stdout


def test_reset_removes_everything_of_a_student_and_nothing_else(classroom, write_engine, settings):
    alice = classroom.start(classroom.alice, products=1)
    bob = classroom.start(classroom.bob, products=1)
    bob.stop()
    engine = alice.engine
    bob_ns, alice_ns = bob.settings.namespace, alice.settings.namespace
    bob_folder = bob.settings.stack_dir
    assert schema_exists(engine, settings.namespace)  # a test's own namespace, t_...: never a class one

    dry = cli(classroom.settings, "class", "reset", "--student", classroom.bob, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove schema {bob_ns}" in dry.stdout and f"would remove queue {bob_ns}.projector" in dry.stdout
    assert schema_exists(engine, bob_ns) and bob_folder.is_dir()

    busy = reset(classroom.settings, classroom.alice)
    assert busy.removed == [] and busy.skipped[0][0] == alice_ns and "still running" in busy.skipped[0][1]

    done = reset(classroom.settings, classroom.bob)
    kinds = {kind for kind, _ in done.removed}
    assert kinds == {"schema", "queue", "exchange", "run folder", "registry row"}, done.lines()
    assert not schema_exists(engine, bob_ns)
    assert not queue_exists(classroom.settings, f"{bob_ns}.projector")
    assert not queue_exists(classroom.settings, f"{bob_ns}.projector.dead")
    assert not bob_folder.exists()
    assert StackRegistry(engine).find(bob_ns) is None

    # Alice's running stack, and the test's own namespace, are untouched.
    assert schema_exists(engine, alice_ns) and alice.status()["healthy"].all()
    assert schema_exists(engine, settings.namespace)
    assert reset(classroom.settings, classroom.bob).lines() == ["nothing to remove"]


def test_progress_is_cleared_only_when_asked_and_only_the_students(base_settings):
    schema = "t_course_" + uuid.uuid4().hex[:8]  # a progress record of this test's own
    engine = write_engine(base_settings)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            conn.execute(sa.text(f'CREATE TABLE "{schema}".progress (student text, exercise text)'))
            conn.execute(sa.text(f"INSERT INTO \"{schema}\".progress VALUES ('ada', '01.1'), ('ada', '01.2'), ('bob', '01.1')"))
        report = ResetReport()
        _clear_progress(engine, schema, "ada", report)
        assert report.removed == [("progress rows", "2 of ada")]
        with engine.connect() as conn:
            assert conn.scalars(sa.text(f'SELECT student FROM "{schema}".progress')).all() == ["bob"]
        assert reset(base_settings, "ada", schema=schema).removed == []  # no --progress: the record stays
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def test_a_second_run_of_the_same_notebook_is_refused_and_the_first_is_untouched(classroom):
    alice = classroom.start(classroom.alice, products=2)
    second_kernel = textwrap.dedent("""
        from cqrs_demo.lab import LabStack
        LabStack("nb01").start()
    """)
    env = {**child_environment(classroom.settings), "CQRS_STUDENT": classroom.alice}
    refused = subprocess.run([sys.executable, "-c", second_kernel], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "NotebookAlreadyRunning" in refused.stderr
    for expected in (f"notebook 'nb01' is already running for student '{classroom.alice}'",
                     f"pid {os.getpid()} on host {socket.gethostname()}", "stack.stop()"):
        assert expected in refused.stderr, refused.stderr
    assert alice.status()["healthy"].all()
    assert alice.sql("SELECT count(*) AS n FROM products").n[0] == 2

    # Another student's run of the same notebook, meanwhile, just runs.
    env["CQRS_STUDENT"] = classroom.bob
    other = subprocess.run([sys.executable, "-c", second_kernel + "\nprint('started')"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 0 and "started" in other.stdout, other.stderr


def test_re_running_the_start_cell_in_the_same_kernel_replaces_the_earlier_stack(classroom):
    first = classroom.start(classroom.alice)
    second = classroom.start(classroom.alice)
    assert first._stack is None  # stopped by the second start
    assert second.status()["healthy"].all()


def test_a_dead_kernels_stack_is_gone_its_counters_read_from_its_files_and_reset_clears_it(classroom):
    kernel = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sys, time
            from cqrs_demo.consistency import wait_until_equal
            from cqrs_demo.lab import LabStack, WorkbenchClient
            stack = LabStack("nb02").start()
            client = WorkbenchClient.for_stack(stack)
            for index in range(2):
                client.create_product(f"P{index}", "2.00", 1, f"SKU-GONE-{index}")
            assert wait_until_equal(stack.engine, stack.read_db, 30)["equal"]
            print("ready", flush=True)
            time.sleep(600)
        """)],
        env={**child_environment(classroom.settings), "CQRS_STUDENT": classroom.alice},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert kernel.stdout.readline().strip() == "ready"
    finally:
        kernel.send_signal(signal.SIGKILL)  # no stop(): the registry row stays open
        kernel.wait(10)
    namespace = naming.namespace_for(classroom.alice, "nb02")

    def gone():
        _, stacks = class_status(classroom.settings, student=classroom.alice)
        return stacks if stacks and stacks[0]["state"] == "gone" else None

    (stack,) = wait_until(gone, timeout=30, interval=0.5, what="the dead kernel's stack to be gone")
    assert stack["namespace"] == namespace and stack["detail"] == "never stopped: its kernel died"
    assert stack["counters"]["committed"] == 2 and stack["counters"]["applied"] == 2

    removed = reset(classroom.settings, classroom.alice)
    assert ("schema", namespace) in removed.removed and not removed.skipped
    assert class_status(classroom.settings, student=classroom.alice) == ([], [])
