"""Starting and stopping the workbench's OS processes: one way for the CLI, the lab, the tests and the benchmarks.

A process started here gets the parent's settings in its environment (`config.to_environment`,
so it reads exactly what the parent holds), writes its output to its own log file, and, unless
detached, dies with the process that started it: a closed notebook kernel or a killed test run
leaves nothing behind. Stopping asks first (SIGTERM: the relay and the projector finish the
message or batch in hand) and insists after a grace period (SIGKILL).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cqrs_demo.config import Settings, to_environment
from cqrs_demo.polling import WaitTimeout, wait_until

PR_SET_PDEATHSIG = 1
STOP_GRACE_SECONDS = 10.0


def _die_with_parent() -> None:
    # Linux sends the child SIGTERM when the thread that started it ends, so processes that
    # must outlive a call are started from a long-lived thread (the main one, here).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def child_environment(settings: Settings | None = None) -> dict[str, str]:
    """This process's environment with `settings` exported over it, for any child we run."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # log lines reach the log file as they happen
    if settings is not None:
        env.update(to_environment(settings))
    return env


def serve_command(name: str) -> list[str]:
    """`cqrs-demo serve NAME`, with this interpreter (the console script may not be on PATH)."""
    return [sys.executable, "-m", "cqrs_demo", "serve", name]


def pid_alive(pid: int) -> bool:
    """Whether a process we did not start (a detached stack's) still runs."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:  # an exited process its new parent has not reaped yet is a zombie: gone, for us
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class Process:
    """A process we started, or one recorded by an earlier `cqrs-demo up --detach` (no `popen`)."""

    name: str
    pid: int
    log_path: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None  # also reaps it once it has exited
        return pid_alive(self.pid)

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> bool:
        """True once it has exited; False if it still runs after `timeout` seconds."""
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        try:
            return wait_until(lambda: not self.alive(), timeout, what=f"{self.name} to exit")
        except WaitTimeout:
            return False

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM, then SIGKILL if it has not exited after `grace` seconds; returns once it is gone."""
        if not self.alive():
            return
        self.signal(signal.SIGTERM)
        if not self.wait(grace):
            self.signal(signal.SIGKILL)
            self.wait(5)

    def log(self, chars: int = 3000) -> str:
        """The end of its log file."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def start(name: str, argv: list[str], log_path: Path, settings: Settings | None = None,
          detach: bool = False) -> Process:
    """Start `argv` with `settings` exported, its output appended to `log_path`.

    Attached (the default), it gets SIGTERM when its parent dies. Detached, it runs in a session
    of its own, out of reach of the terminal's Ctrl-C, until something stops it.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    placement = {"start_new_session": True} if detach else {"preexec_fn": _die_with_parent}
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv, env=child_environment(settings), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, **placement,
        )
    return Process(name, popen.pid, log_path, popen)


def start_service(name: str, settings: Settings, log_path: Path, detach: bool = False) -> Process:
    """One process of the stack, `cqrs-demo serve NAME`, as `cqrs-demo up` runs it."""
    return start(name, serve_command(name), log_path, settings, detach)
