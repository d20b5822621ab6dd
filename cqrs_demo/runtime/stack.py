"""A whole stack for one namespace: the MongoDB stand-in if needed, and the four processes.

`Stack.start()` returns only once every process is healthy (see `health`); `stop()` returns only
once every process has exited. A stack started attached (the default) also dies with the
process that started it, so a closed notebook kernel or a killed test run leaves nothing behind.
A detached stack records itself in `<run dir>/<namespace>/state.json` for `down` and `status`.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from cqrs_demo.config import Settings
from cqrs_demo.connections import write_engine
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.runtime import backing, health, processes
from cqrs_demo.runtime.ports import is_free
from cqrs_demo.runtime.processes import Process
from cqrs_demo.runtime.standin import MongoStandIn


class StackError(RuntimeError):
    pass


class Stack:
    def __init__(self, settings: Settings, detach: bool = False) -> None:
        self.settings = settings
        self.detach = detach
        self.directory = settings.stack_dir
        self.standin: MongoStandIn | None = None
        self.processes: dict[str, Process] = {}
        self._engine = None

    # -- starting and stopping -------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> "Stack":
        self.directory.mkdir(parents=True, exist_ok=True)
        for port in (self.settings.command_port, self.settings.query_port):
            if not is_free(self.settings.host, port):
                raise StackError(
                    f"port {port} on {self.settings.host} is in use; stop what holds it "
                    f"(`cqrs-demo down`?) or choose CQRS_COMMAND_PORT / CQRS_QUERY_PORT"
                )
        backing.ensure(self.settings)
        if not self.settings.mongo_url:
            self.standin = MongoStandIn(self.directory / "mongo", detach=self.detach).start()
            self.settings = self.settings.with_(mongo_url=self.standin.url)
        try:
            for name in self.settings.services:
                self.start_service(name)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        self._save_state()
        return self

    def start_service(self, name: str) -> Process:
        log_path = self.directory / f"{name}.log"
        self.processes[name] = processes.start_service(name, self.settings, log_path, self.detach)
        self._save_state()
        return self.processes[name]

    def stop_service(self, name: str, signum: int = signal.SIGTERM) -> None:
        service = self.processes.get(name)
        if service is None:
            return
        if signum == signal.SIGTERM:
            service.stop()
        else:
            service.signal(signum)
            service.wait(10)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.processes[name].stop()
        if self.standin:
            self.standin.stop()
        elif self._state().get("standin_pid"):
            Process("mongo", self._state()["standin_pid"]).stop()
        state = self.directory / "state.json"
        if state.exists():
            state.unlink()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- health ----------------------------------------------------------------------------

    def urls(self) -> dict[str, str]:
        host = self.settings.host
        return {
            "command": f"http://{host}:{self.settings.command_port}",
            "query": f"http://{host}:{self.settings.query_port}",
        }

    def healthy(self, name: str) -> bool:
        service = self.processes.get(name)
        if service is None or not service.alive():
            return False
        if name in ("command", "query"):
            return health.http_ok(self.urls()[name] + "/health")
        if name == "relay":
            return health.active_relays(self.settings, self._health_engine()) >= 1
        return health.projector_consumers(self.settings) >= 1

    def _health_engine(self):
        """One small engine for every health check, not a new one per poll."""
        if self._engine is None:
            self._engine = write_engine(self.settings, pool_size=1, max_overflow=1)
        return self._engine

    def wait_healthy(self, timeout: float = 60.0, names=None) -> None:
        waiting = list(names or self.settings.services)

        def all_healthy() -> bool:
            for name in list(waiting):
                if not self.processes[name].alive():
                    raise StackError(f"{name} exited during start-up; see {self.directory / (name + '.log')}")
                if self.healthy(name):
                    waiting.remove(name)
            return not waiting

        try:
            wait_until(all_healthy, timeout, interval=0.1, what="every process to be healthy")
        except WaitTimeout:
            raise StackError(f"not healthy after {timeout:g}s: {', '.join(waiting)}") from None

    def status(self) -> list[dict]:
        rows = []
        urls = self.urls()
        if self.settings.mongo_url:
            rows.append({"service": "mongo", "pid": self._state().get("standin_pid"), "where": self.settings.mongo_url,
                         "healthy": True})
        for name in self.settings.services:
            service = self.processes.get(name)
            where = {
                "command": urls["command"],
                "query": urls["query"],
                "relay": f"{self.settings.notify_channel} -> {self.settings.exchange}",
                "projector": f"{self.settings.projector_queue} -> {self.settings.mongo_database}",
            }[name]
            rows.append(
                {"service": name, "pid": service.pid if service else None, "where": where, "healthy": self.healthy(name)}
            )
        return rows

    # -- the state file, for detached stacks -------------------------------------------------

    def _state(self) -> dict:
        path = self.directory / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _save_state(self) -> None:
        state = {
            "namespace": self.settings.namespace,
            "mongo_url": self.settings.mongo_url,
            "standin_pid": self.standin.pid if self.standin else self._state().get("standin_pid"),
            "command_port": self.settings.command_port,
            "query_port": self.settings.query_port,
            "processes": {name: service.pid for name, service in self.processes.items()},
        }
        (self.directory / "state.json").write_text(json.dumps(state, indent=2))

    @classmethod
    def attach(cls, settings: Settings) -> "Stack":
        """The stack recorded for this namespace by an earlier `up --detach`."""
        path = Path(settings.stack_dir) / "state.json"
        if not path.exists():
            raise StackError(f"no stack is recorded for namespace {settings.namespace!r} in {settings.run_dir}")
        state = json.loads(path.read_text())
        stack = cls(
            settings.with_(
                mongo_url=settings.mongo_url or state["mongo_url"],
                command_port=state["command_port"],
                query_port=state["query_port"],
            ),
            detach=True,
        )
        stack.processes = {
            name: Process(name, pid, stack.directory / f"{name}.log") for name, pid in state["processes"].items()
        }
        return stack
