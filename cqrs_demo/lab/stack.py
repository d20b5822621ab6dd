"""A stack a notebook can start, watch, pause, break and reset.

`LabStack("nb01")` is notebook 01's stack *of the student running it*: its namespace is derived
from the student (`CQRS_STUDENT`, else `JUPYTERHUB_USER`, else the login name) and the label
(`cqrs_demo.classroom.naming`), and it has free ports and a MongoDB stand-in of its own, so two
notebooks, or two students, on the same servers never mix their data. The same student's same
notebook runs once at a time: a second kernel gets a message saying where the first one runs
(`cqrs_demo.classroom.seat`). The processes are the ones `cqrs-demo up` starts, as separate OS
processes that die with the kernel.
"""

from __future__ import annotations

import signal

import pandas as pd
import pymongo.errors
import sqlalchemy as sa

from cqrs_demo import config
from cqrs_demo.classroom import counters, naming
from cqrs_demo.classroom.seat import Seat
from cqrs_demo.connections import amqp_connection, mongo_client, write_engine
from cqrs_demo.messaging import topology
from cqrs_demo.polling import wait_until
from cqrs_demo.read import generations
from cqrs_demo.lab.proxy import LinkProxy, broker_link
from cqrs_demo.runtime import backing
from cqrs_demo.runtime.ports import free_port
from cqrs_demo.runtime.stack import Stack, StackError
from cqrs_demo.write.schema import drop_schema, outbox

PAUSABLE = ("relay", "projector")


class LabStack:
    """The whole stack for one notebook: `start()`, then `command_url`, `query_url`, `engine`, `read_db`.

    `notebook` is the notebook's label for its stack ("nb01"); `student=` stands in for the
    student the environment names (the instructor's notebook starts demo students' stacks);
    `namespace=` names the namespace outright instead (the tests' and benchmarks' own).
    """

    def __init__(self, notebook: str | None = None, faults: bool = False, *, namespace: str | None = None,
                 **settings) -> None:
        base = config.from_environment()
        student = settings.pop("student", None) or base.student
        if namespace is None:
            if notebook is None:
                raise TypeError("LabStack needs the notebook's label, as in LabStack('nb01'), or namespace=...")
            namespace = naming.namespace_for(student, notebook)
        self.notebook = notebook or namespace
        self.settings = base.with_(
            namespace=namespace, student=student, command_port=free_port(), query_port=free_port(), **settings
        )
        # What the workbench itself uses to watch RabbitMQ: the real broker, never the proxy,
        # so a staged outage blinds the stack and not the observer.
        self.observer_settings = self.settings
        self.broker_link: LinkProxy | None = None
        if faults:
            self.broker_link, proxied = broker_link(self.settings.amqp_url)
            self.settings = self.settings.with_(amqp_url=proxied)
        self.seat = Seat(self.observer_settings, self.notebook, owner=self)
        self._stack: Stack | None = None
        self._engine = None
        self._mongo = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, fresh: bool = True) -> "LabStack":
        """Start every process and wait until each is healthy. `fresh` empties the namespace first.

        Raises `NotebookAlreadyRunning` (saying where) when another kernel runs this namespace.
        """
        backing.ensure(self.observer_settings)
        self.seat.take((self.settings.command_port, self.settings.query_port), faults=self.broker_link is not None)
        try:
            self._stop_leftover()
            if self.broker_link:
                self.broker_link.start()
            if fresh:
                self._remove_data()
            self._stack = Stack(self.settings).start()
        except BaseException:
            self.stop()
            raise
        self.settings = self._stack.settings  # now carries the stand-in's URL
        self.observer_settings = self.observer_settings.with_(mongo_url=self.settings.mongo_url)
        self.seat.running(self.settings.mongo_url)
        return self

    def stop(self) -> None:
        last_counters = self.counters() if self._stack else None  # the stand-in goes with the stack
        if self._stack:
            self._stack.stop()
        if self.broker_link:
            self.broker_link.stop()
        if self._engine is not None:
            self._engine.dispose()
        if self._mongo is not None:
            self._mongo.close()
        self._stack, self._engine, self._mongo = None, None, None
        self.seat.leave(last_counters)

    def __enter__(self) -> "LabStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def pause(self, name: str) -> None:
        """Stop the relay or the projector; commands keep working, events wait in the outbox or queue."""
        self._check_pausable(name)
        self.stack.stop_service(name)

    def resume(self, name: str, **settings) -> None:
        """Start a paused process again; `settings` as for `restart` (they need it stopped)."""
        self._check_pausable(name)
        if settings:
            if self.stack.processes[name].alive():
                raise StackError(f"pause {name} before resuming it with other settings")
            self._change(**settings)
        if not self.stack.processes[name].alive():
            self.stack.start_service(name)
        self.stack.wait_healthy(names=[name])

    def restart(self, name: str, **settings) -> None:
        """Stop and start one process. `settings` change the stack's settings first, so the process
        comes back with them: `restart("projector", projector_prefetch=50)` (notebook 08)."""
        self.stack.stop_service(name)
        self._change(**settings)
        self.stack.start_service(name)
        self.stack.wait_healthy(names=[name])

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to finish what it holds."""
        self.stack.stop_service(name, signal.SIGKILL)

    def reset(self) -> None:
        """Empty this namespace's data everywhere and restart its processes on the same ports."""
        for name in reversed(self.settings.services):
            self.stack.stop_service(name)
        self._remove_data()
        for name in self.settings.services:
            self.stack.start_service(name)
        self.stack.wait_healthy()

    # -- what a notebook looks at ------------------------------------------------------------

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            raise StackError("the stack is not running; call start() first")
        return self._stack

    @property
    def command_url(self) -> str:
        return self.stack.urls()["command"]

    @property
    def query_url(self) -> str:
        return self.stack.urls()["query"]

    @property
    def engine(self):
        if self._engine is None:
            self._engine = write_engine(self.settings)
        return self._engine

    @property
    def read_db(self):
        if self._mongo is None:
            self._mongo = mongo_client(self.settings)
        # The live generation's collections, followed across a rebuild (`read.generations`).
        return generations.Following(self._mongo[self.settings.mongo_database])

    def counters(self) -> dict[str, int] | None:
        """The projector's anomaly counters and the events committed (see `classroom.counters`);
        None when the stack's stores do not answer."""
        try:
            with mongo_client(self.settings, serverSelectionTimeoutMS=2000) as client:
                found = counters.from_read_model(client[self.settings.mongo_database])
            return counters.with_committed(found, counters.committed_events(self.engine, self.settings.schema))
        except (pymongo.errors.PyMongoError, sa.exc.SQLAlchemyError, RuntimeError):
            return None

    def status(self) -> pd.DataFrame:
        return pd.DataFrame(self.stack.status()).set_index("service")

    def logs(self, name: str, lines: int = 20) -> str:
        path = self.stack.directory / f"{name}.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(text[-lines:])

    def sql(self, query: str, **params) -> pd.DataFrame:
        """Run a read-only SQL query in this namespace's schema."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f'SET LOCAL search_path TO "{self.settings.schema}"')
            result = conn.execute(sa.text(query), params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def wait_published(self, timeout: float, what: str = "every event to be published") -> None:
        """Until the relay has published every outbox row committed so far."""
        unpublished = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))

        def all_published() -> bool:
            with self.engine.connect() as conn:
                return conn.scalar(unpublished) == 0

        wait_until(all_published, timeout, what=what)

    # -- internals ---------------------------------------------------------------------------

    def _change(self, **settings) -> None:
        """The stack's settings changed: a process started from now on runs with them."""
        if settings:
            self.settings = self.settings.with_(**settings)
            self.observer_settings = self.observer_settings.with_(**settings)
            self.stack.settings = self.stack.settings.with_(**settings)

    def _check_pausable(self, name: str) -> None:
        if name not in PAUSABLE:
            raise ValueError(f"only {' and '.join(PAUSABLE)} can be paused; {name!r} serves requests")

    def _stop_leftover(self) -> None:
        """Processes an earlier run of this namespace left (a kernel that died with a detached
        child) are stopped. Only ever called holding the namespace's lease: no live run owns them."""
        try:
            Stack.attach(self.settings).stop()
        except StackError:
            pass

    def _remove_data(self) -> None:
        if self.settings.mongo_url:
            with mongo_client(self.settings) as client:
                client.drop_database(self.settings.mongo_database)
        else:  # the stand-in `start` will launch keeps its data in files of this namespace's own
            for path in (self.settings.stack_dir / "mongo").glob("read-model.db*"):
                path.unlink()
        engine = write_engine(self.settings)
        try:
            drop_schema(self.settings, engine)
        finally:
            engine.dispose()
        connection = amqp_connection(self.observer_settings)
        try:
            topology.delete_all(connection.channel(), self.settings)
        finally:
            connection.close()
