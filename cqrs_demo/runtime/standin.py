"""The local MongoDB stand-in: an `nx-27017` server (MongoDB wire protocol over SQLite).

Used when no `CQRS_MONGO_URL` is given. Each instance gets its own port, pid file, log file and
database file, so several stacks (and test runs) on one machine never share one.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pymongo

from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.runtime import processes
from cqrs_demo.runtime.ports import free_port


def _executable() -> str:
    beside_python = Path(sys.executable).with_name("nx-27017")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nx-27017")
    if not found:
        raise RuntimeError("nx-27017 is not installed; install the project (pip install -e .)")
    return found


class MongoStandIn:
    def __init__(self, directory: Path, port: int | None = None, in_memory: bool = False,
                 detach: bool = False) -> None:
        self.directory = Path(directory)
        self.port = port
        self.in_memory = in_memory
        self.detach = detach
        self.process: processes.Process | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout: float = 20.0) -> "MongoStandIn":
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        database = "memory" if self.in_memory else str(self.directory / "read-model.db")
        argv = [
            _executable(),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--db", database,
            "--pid-file", str(self.directory / "mongo.pid"),
            "--log-file", str(self.directory / "mongo.log"),
        ]
        self.process = processes.start("mongo", argv, self.directory / "mongo.out", detach=self.detach)
        try:
            wait_until(self._answers, timeout, interval=0.1, what=f"the MongoDB stand-in on port {self.port}")
        except WaitTimeout:
            self.stop()
            raise RuntimeError(f"the MongoDB stand-in did not answer on port {self.port} within {timeout}s") from None
        return self

    def _answers(self) -> bool:
        if not self.process.alive():
            raise RuntimeError(f"the MongoDB stand-in exited; see {self.directory / 'mongo.out'}")
        try:
            with pymongo.MongoClient(self.url, serverSelectionTimeoutMS=300) as client:
                client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        pid_file = self.directory / "mongo.pid"
        if pid_file.exists():
            pid_file.unlink()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None
