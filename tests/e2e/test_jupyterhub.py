"""JupyterHub with classroom/jupyterhub_config.py: two students' servers, each running a stack.

The hub is the real one (JupyterHub from PyPI, configurable-http-proxy from npm, fetched into
build/node/), started on free local ports with the classroom's own config file. Only what
needs Docker or passwords is replaced (`OVERLAY`): a dummy authenticator, and a local-process
spawner that runs every server as this user, with a home of its own under a temporary folder.
Everything else is the classroom's: the shared servers' URLs handed from the hub's environment
to each server, the course handed out into each home, the idle culler running as a service.

Two students' servers are spawned through the hub's REST API, with an admin token the overlay
declares. In each, a kernel is started and driven through the server's REST and websocket API
(through the hub's proxy, as a browser would): both start notebook 01's stack at the same time
on the same PostgreSQL, RabbitMQ and MongoDB, create a product, read it back, and see only their
own. Nothing tells a server who its student is but JupyterHub's JUPYTERHUB_USER: the namespace
each stack runs in is the package's own derivation from it (`cqrs_demo.classroom.naming`). The
students' names carry a random suffix, so two runs of this test on the same servers never meet.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests

from cqrs_demo.classroom import naming
from cqrs_demo.classroom.reset import reset
from cqrs_demo.course import edition
from cqrs_demo.polling import WaitTimeout, wait_until
from jupyter_browser import free_port
from node_packages import REPO, node_modules
from remote_kernel import RemoteKernel

CLASSROOM_CONFIG = REPO / "classroom" / "jupyterhub_config.py"
NOTEBOOK = "nb01"  # the label notebook 01 gives its stack

pytestmark = pytest.mark.timeout(240)

# The classroom's config, with what only a real classroom has (Docker, passwords, its addresses)
# replaced by local equivalents.
OVERLAY = """
import os
c = get_config()
load_subconfig({classroom_config!r})

c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"  # SimpleLocalProcessSpawner: this user, a home per student
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.ConfigurableHTTPProxy.pid_file = {data!r} + "/proxy.pid"
c.JupyterHub.pid_file = {data!r} + "/jupyterhub.pid"
if os.geteuid() == 0:  # CI and containers run as root; jupyter-server refuses to unless told
    c.Spawner.args = list(c.Spawner.args) + ["--allow-root"]

# The test's admin token.
c.JupyterHub.services = list(c.JupyterHub.services) + [{{"name": "classroom-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = list(c.JupyterHub.load_roles) + [{{
    "name": "classroom-test",
    "scopes": ["admin:users", "admin:servers", "access:servers", "read:services"],
    "services": ["classroom-test"],
}}]
"""


class Hub:
    """A JupyterHub process of the test's own, and the REST calls the test makes to it."""

    def __init__(self, folder: Path, settings, mongo_url: str) -> None:
        self.folder = folder
        self.token = secrets.token_hex(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.homes = folder / "homes"
        self.course = folder / "course"
        self.log_path = folder / "jupyterhub.log"
        run = uuid.uuid4().hex[:6]
        self.students = (f"ada-{run}", f"grace.hopper-{run}")
        self.settings = settings.with_(mongo_url=mongo_url)
        self.process: subprocess.Popen | None = None
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"

    def write_config(self) -> Path:
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.homes.mkdir(exist_ok=True)
        path = self.folder / "jupyterhub_config.py"
        path.write_text(OVERLAY.format(
            classroom_config=str(CLASSROOM_CONFIG), homes=str(self.homes), hub_port=free_port(),
            proxy_api_port=free_port(), proxy=str(node_modules() / ".bin" / "configurable-http-proxy"),
            data=str(data), token=self.token))
        return path

    def environment(self) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if not name.startswith(("CQRS_", "CLASSROOM_"))}
        env.update({
            # The shared servers, as compose gives them to the hub.
            "CQRS_DATABASE_URL": self.settings.database_url,
            "CQRS_AMQP_URL": self.settings.amqp_url,
            "CQRS_MONGO_URL": self.settings.mongo_url,
            "CLASSROOM_COURSE_DIR": str(self.course),
            "CLASSROOM_DATA_DIR": str(self.folder / "data"),
            "CLASSROOM_URL": self.url,
            "CLASSROOM_HUB_HOST": "127.0.0.1",
            # `python` and `jupyterhub-singleuser` in the config's command are this environment's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        })
        return env

    def start(self, timeout: float = 60.0) -> "Hub":
        edition.build(REPO / "notebooks", self.course)  # the student's edition, as `make student` writes it
        config_path = self.write_config()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(config_path)], cwd=self.folder,
                env=self.environment(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.wait(self._answers, timeout, "the hub to answer")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"JupyterHub exited with {self.process.returncode}:\n{self.log()}")
        try:
            return self.http.get(f"{self.url}/hub/api/", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait(self, condition, timeout: float, what: str):
        try:
            return wait_until(condition, timeout, interval=0.25, what=what)
        except WaitTimeout as exc:
            raise AssertionError(f"{exc}\n--- JupyterHub log ---\n{self.log()}") from None

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.http.request(method, f"{self.url}/hub/api/{path}", timeout=30, **kwargs)
        assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}\n{self.log()}"
        return response

    def spawn(self, student: str, timeout: float = 90.0) -> str:
        """Start the student's server through the REST API; returns its URL once it answers."""
        assert self.api("POST", f"users/{student}/server").status_code in (201, 202)
        self.wait(lambda: (self.api("GET", f"users/{student}").json()["servers"].get("", {}).get("ready")),
                  timeout, f"{student}'s server to be ready")
        return f"{self.url}/user/{student}"

    def log(self, last: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-last:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        descendants = []
        try:
            descendants = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.Error:
            pass
        if self.process.poll() is None:
            for student in self.students:  # servers (and their kernels, and their stacks) first
                try:
                    self.http.delete(f"{self.url}/hub/api/users/{student}/server", timeout=30)
                except requests.RequestException:
                    pass
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        gone, alive = psutil.wait_procs(descendants, timeout=15)
        for process in alive:
            process.kill()
        self.http.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, base_settings, mongo_url):
    hub = Hub(tmp_path_factory.mktemp("hub"), base_settings, mongo_url)
    try:
        yield hub.start()
    finally:
        hub.stop()
        for student in hub.students:
            print("\n".join(reset(hub.settings, student).lines()))


START_A_STACK = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from cqrs_demo import config
    from cqrs_demo.lab import LabStack, WorkbenchClient

    settings = config.from_environment()
    stack = LabStack("nb01").start()  # as notebook 01 does (NOTEBOOK)
    client = WorkbenchClient.for_stack(stack)
    created = client.create_product(f"Notebook of {settings.student}", "9.99", 3, f"SKU-{settings.student}")
    print(json.dumps({
        "student": settings.student, "namespace": stack.settings.namespace,
        "jupyterhub_user": os.environ.get("JUPYTERHUB_USER"), "home": os.environ["HOME"], "cwd": os.getcwd(),
        "shared": [stack.settings.database_url, stack.settings.amqp_url, stack.settings.mongo_url],
        "created": created.status, "product": created.body,
        "pids": [process.pid for process in stack.stack.processes.values()],
    }, default=str))
""")

READ_IT_BACK = textwrap.dedent("""
    read = client.product(created.body["id"], min_version=created.body["version"])
    listing = client.products()
    print(json.dumps({"status": read.status, "product": read.body, "names": [p["name"] for p in listing.body]},
                     default=str))
""")


def test_two_students_servers_each_run_a_stack_of_their_own(hub):
    students = hub.students
    started = time.monotonic()
    with ThreadPoolExecutor(len(students)) as pool:
        hub.api("POST", "users", json={"usernames": list(students)})
        servers = dict(zip(students, pool.map(hub.spawn, students)))
        spawned = time.monotonic() - started

        # The course is in each home, in the student's edition.
        for student in students:
            handed_out = sorted(path.name for path in (hub.homes / student / "course").glob("*.ipynb"))
            assert handed_out == sorted(path.name for path in hub.course.glob("*.ipynb")), student
            assert "BEGIN SOLUTION" not in (hub.homes / student / "course" / "03_events_and_the_projector.ipynb").read_text()

        kernels = {student: RemoteKernel(servers[student], hub.token) for student in students}
        try:
            list(pool.map(RemoteKernel.start, kernels.values()))
            # Both stacks start at once, on the same servers.
            first = dict(zip(students, pool.map(lambda k: json.loads(k.run(START_A_STACK)), kernels.values())))
            # Both still running: each reads its own product back, and sees no other.
            second = dict(zip(students, pool.map(lambda k: json.loads(k.run(READ_IT_BACK)), kernels.values())))
            for kernel in kernels.values():
                kernel.run("stack.stop()")
        finally:
            for kernel in kernels.values():
                kernel.shutdown()
    print(f"servers spawned in {spawned:.1f} s; the whole run in {time.monotonic() - started:.1f} s")

    shared = [hub.settings.database_url, hub.settings.amqp_url, hub.settings.mongo_url]
    assert first[students[0]]["namespace"] != first[students[1]]["namespace"]
    for student in students:
        seen = first[student]
        assert seen["student"] == seen["jupyterhub_user"] == student
        assert seen["namespace"] == naming.namespace_for(student, NOTEBOOK)
        assert Path(seen["home"]) == Path(seen["cwd"]) == hub.homes / student
        assert seen["shared"] == shared, "the hub did not hand the shared servers' URLs to the server"
        assert seen["created"] == 201, seen["product"]
        back = second[student]
        assert back["status"] == 200
        assert back["product"]["name"] == f"Notebook of {student}"
        assert back["product"]["sku"] == f"SKU-{student}"
        assert back["names"] == [f"Notebook of {student}"], f"{student} sees another student's data"
        assert not [pid for pid in seen["pids"] if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"], \
            f"{student}'s stack left processes running"


def test_the_idle_culler_runs_as_a_hub_service(hub):
    service = hub.api("GET", "services/idle-culler").json()
    assert service["pid"], f"the idle culler is not running: {service}\n{hub.log()}"
    command = psutil.Process(service["pid"]).cmdline()
    assert "jupyterhub_idle_culler" in command
