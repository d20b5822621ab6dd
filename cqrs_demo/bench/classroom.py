"""How many students one machine holds: what a student's notebook costs, idle and busy.

In a class, a student is a Jupyter server, a kernel, and the stack the kernel starts (LabStack:
command, query, relay and projector), on the PostgreSQL, RabbitMQ and MongoDB the class shares.
This scenario starts N students side by side on this machine, each a kernel of this interpreter
running `LabStack` in a namespace of its own, and measures them with `bench.process_cost`:

- idle: every stack started, no traffic, for N = 1, 2, 4, 8;
- active: every kernel updating a product 5 times a second and reading each update back
  (`LoadGenerator`, as notebook 05 does, at a notebook's pace), for N = 1, 2, 4;
- one JupyterLab server with no kernel, idle;
- the shared servers: PostgreSQL's backends of the class's database (its own database, so they
  are the class's), the class's one MongoDB stand-in, and RabbitMQ's Erlang VM (shared with
  whatever else uses the broker: its figure is its growth over the no-student baseline).

From these, `bench.capacity` computes how many students this machine holds, and per core and per GB.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import psutil
import requests

from cqrs_demo import config
from cqrs_demo.bench.capacity import capacity
from cqrs_demo.bench.process_cost import Footprint, measure, tree
from cqrs_demo.bench.shared_servers import SharedServers
from cqrs_demo.connections import ensure_database
from cqrs_demo.polling import wait_until
from cqrs_demo.runtime import processes
from cqrs_demo.runtime.kernel import this_interpreter
from cqrs_demo.runtime.ports import free_port
from cqrs_demo.runtime.standin import MongoStandIn

DATABASE = "cqrs_bench_classroom"
RATE = 5.0  # commands a second per active student

START_STACK = """
import json, threading
from cqrs_demo import config
from cqrs_demo.lab import LabStack, LoadGenerator
stack = LabStack(namespace=config.from_environment().namespace).start()
"""
START_LOAD = """
load = LoadGenerator(stack, products=20)
load.prepare()
loaded = {{}}
worker = threading.Thread(target=lambda: loaded.update(frame=load.run(
    commands={commands}, rate={rate}, threads=4, progress=False)))
worker.start()
"""
LOAD_RESULT = """
worker.join()
frame = loaded["frame"]
print(json.dumps({"sent": len(frame), "errors": int((frame["status"] >= 300).sum()),
                  "late_ms_p95": float(frame["late_ms"].quantile(0.95)),
                  "visible_ms_p50": float(frame["visible_ms"].median())}))
"""


class Student:
    """One student's kernel, with a stack of its own started in it as a notebook's first cell does."""

    def __init__(self, number: int, settings: config.Settings, folder: Path) -> None:
        self.number = number
        self.settings = settings.with_(namespace=f"bench_room_{number}", student=f"student {number}")
        self.kernel = this_interpreter(folder / f"kernel-{number}")
        self.client = None

    def start(self) -> "Student":
        self.kernel.start_kernel(env=processes.child_environment(self.settings))
        self.client = self.kernel.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.run(START_STACK)
        return self

    def run(self, code: str, timeout: float = 300) -> str:
        printed = []

        def keep(message):
            if message["msg_type"] == "stream" and message["content"]["name"] == "stdout":
                printed.append(message["content"]["text"])

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=keep)
        if reply["content"]["status"] != "ok":
            content = reply["content"]
            raise RuntimeError(f"student {self.number}: {content.get('ename')}: {content.get('evalue')}")
        return "".join(printed)

    @property
    def pid(self) -> int:
        return self.kernel.provisioner.pid

    def stop(self) -> None:
        try:
            self.run("stack.stop()", timeout=60)
        finally:
            self.client.stop_channels()
            self.kernel.shutdown_kernel()


class JupyterServer:
    """A JupyterLab server with no kernel: the part of a student that is not their notebook."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.token = os.urandom(16).hex()
        self.process: processes.Process | None = None

    def start(self) -> "JupyterServer":
        argv = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.folder}",
                "--LabApp.news_url=None"]
        if os.geteuid() == 0:
            argv.append("--allow-root")
        self.process = processes.start("jupyter", argv, self.folder / "jupyter.log")
        wait_until(self._answers, 60, what=f"JupyterLab on port {self.port}")
        return self

    def _answers(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/api/status",
                                headers={"Authorization": f"token {self.token}"}, timeout=2).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process:
            self.process.stop()


def _per_student(footprints: dict[str, Footprint], students: list[Student]) -> dict:
    trees = [footprints[f"student {s.number}"] for s in students]
    n = len(trees)
    mean = {key: (round(sum(getattr(t, key) for t in trees) / n, 4 if key == "cpu_cores" else 1)
                  if all(getattr(t, key) is not None for t in trees) else None)
            for key in ("cpu_cores", "rss_mb", "pss_mb", "uss_mb")}
    return {**mean, "processes": trees[0].processes}


def _level(students: list[Student], shared: SharedServers, seconds: float, extra: dict | None = None) -> dict:
    groups = {f"student {s.number}": (lambda pid=s.pid: tree(pid)) for s in students}
    groups.update(shared.groups())
    groups.update(extra or {})
    footprints = measure(groups, seconds)
    result = {"students": len(students), "shared": {name: footprints[name].as_dict() for name in shared.groups()}}
    result["shared"]["rabbitmq"].update(
        shared.class_broker_memory([s.settings.namespace for s in students], [s.pid for s in students]))
    if students:
        result["per_student"] = _per_student(footprints, students)
    for name in extra or {}:
        result[name] = footprints[name].as_dict()
    return result


def processes_of(student: Student) -> list[dict]:
    """Each process of a student's tree, by what it is (the kernel, or the service it serves), with its memory."""
    found = []
    for process in tree(student.pid):
        try:
            command = process.cmdline()
            memory = process.memory_full_info()
        except psutil.Error:
            continue
        role = "kernel" if "ipykernel_launcher" in command else " ".join(command[-2:])
        found.append({"process": role, "rss_mb": round(memory.rss / 1024**2, 1),
                      "pss_mb": round(getattr(memory, "pss", 0) / 1024**2, 1)})
    return found


def _figure(idle: dict, active: dict) -> plt.Figure:
    fig, (memory, cpu) = plt.subplots(1, 2, figsize=(9, 3.5))
    for label, levels in (("idle", idle), ("active, 5 commands/s", active)):
        ns = sorted(levels, key=int)
        memory.plot([int(n) for n in ns], [levels[n]["per_student"]["pss_mb"] for n in ns], marker="o", label=label)
        cpu.plot([int(n) for n in ns], [levels[n]["per_student"]["cpu_cores"] * 100 for n in ns], marker="o",
                 label=label)
    memory.set_xlabel("students side by side")
    memory.set_ylabel("PSS per student (MB)")
    cpu.set_xlabel("students side by side")
    cpu.set_ylabel("CPU per student (% of a core)")
    memory.set_title("Kernel + stack memory")
    cpu.set_title("Kernel + stack CPU")
    memory.legend()
    fig.tight_layout()
    return fig


def classroom(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    idle_levels = [1, 2] if quick else [1, 2, 4, 8]
    active_levels = [1, 2] if quick else [1, 2, 4]
    settle, window = (3, 5) if quick else (10, 20)
    base = config.from_environment()
    settings = base.with_(database_url=base.database_url.rsplit("/", 1)[0] + "/" + DATABASE)
    ensure_database(settings.database_url)
    with tempfile.TemporaryDirectory(prefix="bench-classroom-") as folder:
        folder = Path(folder)
        mongo = None
        if not settings.mongo_url:  # one MongoDB for the class, as a classroom has
            mongo = MongoStandIn(folder / "mongo").start()
            settings = settings.with_(mongo_url=mongo.url)
        settings = settings.with_(run_dir=folder / "run")
        shared = SharedServers(settings, mongo)
        server = JupyterServer(folder).start()
        students: list[Student] = []
        try:
            time.sleep(settle)
            baseline = _level([], shared, window, {"jupyter_server": lambda: tree(server.process.pid)})
            server.stop()
            idle = {}
            for n in idle_levels:
                while len(students) < n:
                    students.append(Student(len(students), settings, folder).start())
                time.sleep(settle)
                idle[str(n)] = _level(students, shared, window)
            idle[str(idle_levels[-1])]["processes_of_one_student"] = processes_of(students[0])
            active = {}
            for n in sorted(active_levels, reverse=True):
                while len(students) > n:
                    students.pop().stop()
                commands = int(RATE * (window + settle + 5))
                for student in students:
                    student.run(START_LOAD.format(commands=commands, rate=RATE))
                time.sleep(settle)
                active[str(n)] = _level(students, shared, window)
                active[str(n)]["load"] = [json.loads(student.run(LOAD_RESULT)) for student in students]
        finally:
            for student in students:
                student.stop()
            server.stop()
            shared.close()
            if mongo is not None:
                mongo.stop()
    active = dict(sorted(active.items(), key=lambda item: int(item[0])))
    machine = {"cores": os.cpu_count() or 1, "memory_gb": psutil.virtual_memory().total / 1024**3}
    results = {"baseline": baseline, "idle": idle, "active": active,
               "capacity": capacity(idle, active, baseline, baseline["jupyter_server"], **machine)}
    parameters = {"idle_students": idle_levels, "active_students": active_levels, "rate_per_student": RATE,
                  "settle_seconds": settle, "window_seconds": window, "database": DATABASE,
                  "mongo": "one stand-in for the class" if mongo is not None else "CQRS_MONGO_URL"}
    return parameters, results, _figure(idle, active)
