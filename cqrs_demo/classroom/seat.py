"""A stack's seat in the class: its namespace's lease, and its row in the registry, for as long as it runs.

`LabStack.start()` takes the seat before it touches any data, and `stop()` leaves it:
- the lease (`lease.py`) makes a second run of the same namespace stop with a message that
  says where the first one runs, instead of emptying its data;
- the registry row (`registry.py`) tells the instructor's view who runs what, where, and, once
  stopped, what its counters were. Only class namespaces (`naming.py`) are registered: the
  tests' and benchmarks' stacks hold a lease but stay out of the class's record.

A kernel re-running its own start cell is not a second run: the stack it started before in
the same process is stopped, as that cell did before leases existed.
"""

from __future__ import annotations

import logging
import os
import socket
import weakref

import sqlalchemy as sa

from cqrs_demo.classroom import naming
from cqrs_demo.classroom.lease import NamespaceLease, NotebookAlreadyRunning, already_running_message
from cqrs_demo.classroom.registry import StackRegistry
from cqrs_demo.config import Settings
from cqrs_demo.connections import write_engine

log = logging.getLogger(__name__)

# The stacks this process runs, by namespace: a re-run cell replaces its own earlier stack.
_seated_here: "weakref.WeakValueDictionary[str, object]" = weakref.WeakValueDictionary()


class Seat:
    def __init__(self, settings: Settings, notebook: str, owner: object) -> None:
        self.settings = settings
        self.notebook = notebook
        self.owner = owner  # the LabStack, whose earlier self in this process is stopped on take()
        self.lease = NamespaceLease(settings)
        self.registry: StackRegistry | None = None
        if naming.is_class_namespace(settings.namespace):
            self.registry = StackRegistry(write_engine(settings, pool_size=1, max_overflow=1))

    @property
    def namespace(self) -> str:
        return self.settings.namespace

    def take(self, ports: tuple[int, int], faults: bool) -> None:
        """Hold the namespace and record the stack; NotebookAlreadyRunning if another process holds it."""
        earlier = _seated_here.get(self.namespace)
        if earlier is not None and earlier is not self.owner:
            earlier.stop()
        if not self.lease.acquire():
            holder = self.registry.find(self.namespace) if self.registry else None
            raise NotebookAlreadyRunning(already_running_message(self.notebook, self.settings.student, holder))
        _seated_here[self.namespace] = self.owner
        if self.registry is None:
            return
        try:
            self.registry.register(
                namespace=self.namespace, student=self.settings.student, notebook=self.notebook,
                host=socket.gethostname(), pid=os.getpid(), stack_dir=str(self.settings.stack_dir.resolve()),
                mongo_url=None, command_port=ports[0], query_port=ports[1], delivery=self.settings.delivery,
                guarantees={"projector_ack": self.settings.projector_ack, "projector_dedup": self.settings.projector_dedup,
                            "projection_audit": self.settings.projection_audit, "faults": faults},
            )
        except BaseException:
            self.leave(None)
            raise

    def running(self, mongo_url: str | None) -> None:
        if self.registry:
            self._note(self.registry.update, mongo_url=mongo_url)

    def measured(self, measurement: dict) -> None:
        if self.registry and self.lease.held:
            self._note(self.registry.measured, measurement)

    def _note(self, write, *args, **kwargs) -> None:
        # The registry is the instructor's record: a student's run must not fail because one
        # of its updates could not be written (the row then says less; the stack is unharmed).
        try:
            write(self.namespace, *args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            log.warning("the class registry was not updated for %s: %s", self.namespace, exc)

    def leave(self, counters: dict | None) -> None:
        """Close the registry row (with the last counters) and release the namespace."""
        if not self.lease.held:
            return
        try:
            if self.registry:
                self._note(self.registry.stopped, counters)
        finally:
            if _seated_here.get(self.namespace) is self.owner:
                del _seated_here[self.namespace]
            self.lease.release()
            if self.registry:  # its one pooled connection; the engine reconnects if the stack restarts
                self.registry.engine.dispose()
