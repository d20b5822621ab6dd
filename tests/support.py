"""Helpers several test layers share: background loops and extra processes."""

from __future__ import annotations

import threading
from pathlib import Path

from cqrs_demo.config import Settings
from cqrs_demo.runtime import processes
from cqrs_demo.runtime.processes import Process

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


def extra_process(settings: Settings, directory: Path, name: str) -> Process:
    """One more `cqrs-demo serve NAME` beside a stack's own, logging to `extra-NAME.log`; stop it in a finally."""
    return processes.start_service(name, settings, Path(directory) / f"extra-{name}.log")
