"""Helpers several test layers share: background loops, bounded waits and extra processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from cqrs_demo.config import Settings, to_environment
from cqrs_demo.runtime.stack import _die_with_parent

# The body of the seed README's "Create a product" request.
SEED_PRODUCT = {
    "name": "Product A",
    "description": "Product Test",
    "price": 120,
    "quantity": 3,
    "sku": "SKU-DEMO-0024",
}


class Background:
    """Runs a relay or projector loop in a thread, stoppable and awaitable like a process."""

    def __init__(self, name: str, loop) -> None:
        self.name = name
        self.stop = threading.Event()
        self.worker = loop
        self.thread = threading.Thread(target=loop.run, args=(self.stop,), name=name, daemon=True)

    def start(self) -> "Background":
        self.thread.start()
        return self

    def halt(self, timeout: float = 10) -> None:
        self.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.name} did not stop"


def wait_for(predicate, timeout: float, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate()` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


class ExtraProcess:
    """One more `cqrs-demo serve NAME` process beside a stack's own; stop it in a finally."""

    def __init__(self, settings: Settings, directory: Path, name: str) -> None:
        self.log_path = Path(directory) / f"extra-{name}.log"
        env = {**os.environ, **to_environment(settings), "PYTHONUNBUFFERED": "1"}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cqrs_demo", "serve", name], env=env, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # a crashed test run leaves no stray process behind
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
