"""The instructor's view: every class stack on the servers, and one row per student.

A stack is listed when the registry has it or the servers do (a schema, a Mongo database or a
run folder with a class namespace), so nothing a class left behind goes unseen. Its state:
- running: its relay holds the relay lock (naive delivery has no relay) and its projector
  queue has a consumer;
- partly running: its kernel holds the namespace's lease, but the relay or the projector is
  not working (paused by the notebook, or crashed); or its lease is gone (the kernel died, or
  stopped it) but the relay or the projector still runs, on its way out: `detail` says which;
- stopped: its notebook stopped it (the registry says when);
- gone: nothing runs it and it was never stopped: its kernel died, or only its data is left.

Counters (`counters.py`) come from the running stack's read model, from the registry's copy
for a stopped one, and, for a gone one, from its database when it can still be read. Exercises
passed come from the course's progress record.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pymongo.errors

from cqrs_demo.classroom import counters, naming, servers
from cqrs_demo.classroom.registry import SCHEMA, StackRegistry
from cqrs_demo.config import Settings
from cqrs_demo.connections import mongo_client, write_engine
from cqrs_demo.runtime.standin import MongoStandIn

STATES = ("running", "partly running", "stopped", "gone")
MEASURED = {"lost (measured)": "events lost", "applied twice (measured)": "events applied twice"}
STUDENT_COLUMNS = ("student", "notebooks", *STATES, "exercises passed", *counters.SHOWN, *MEASURED)


def exercises_passed(engine, schema: str = SCHEMA) -> dict[str, int] | None:
    """Exercises each student has passed, from the progress record; None while the course has none.

    The one place the view reads the exercises' record, through its documented read function.
    """
    try:
        from cqrs_demo.course.record import class_progress
    except ImportError:
        return None
    progress = class_progress(engine, schema)
    passed = progress[progress["passed_at"].notna()]
    return {student: int(count) for student, count in passed.groupby("student").size().items()}


def projector_queues(namespace: str) -> list[str]:
    """The projector's queue in each delivery mode, single or first partition (`CQRS_PARTITIONS`):
    whichever has a consumer is the one in use."""
    return [queue for mode in ("outbox", "naive")
            for queue in (Settings(namespace=namespace, delivery=mode).projector_queue,
                          Settings(namespace=namespace, delivery=mode, partitions=2).projector_queues[0])]


def consuming(namespace: str, consumers: dict) -> bool:
    return any((consumers.get(queue) or 0) >= 1 for queue in projector_queues(namespace))


def stack_state(namespace: str, row: dict | None, found: servers.Findings, consumers: dict) -> tuple[str, str]:
    """(state, detail) of one class stack: see the module's docstring."""
    naive = bool(row) and row["delivery"] == "naive"
    relay_ok = naive or namespace in found.relays
    projector_ok = consuming(namespace, consumers)
    if relay_ok and projector_ok:
        return "running", ""
    if namespace in found.leases:
        missing = [name for name, ok in (("relay", relay_ok), ("projector", projector_ok)) if not ok]
        return "partly running", f"{' and '.join(missing)} not working"
    left = [name for name, alive in (("relay", namespace in found.relays), ("projector", projector_ok)) if alive]
    if left:
        return "partly running", f"stopping: {' and '.join(left)} still running"
    if row and row["stopped_at"] is not None:
        return "stopped", ""
    return "gone", "never stopped: its kernel died" if row else "left on the servers, not in the registry"


def _live_counters(settings: Settings, namespace: str, mongo_url: str | None) -> dict | None:
    if not mongo_url:
        return None
    try:
        with mongo_client(settings.with_(mongo_url=mongo_url), serverSelectionTimeoutMS=2000) as client:
            return counters.from_read_model(client[settings.with_(namespace=namespace).mongo_database])
    except pymongo.errors.PyMongoError:
        return None


def _leftover_counters(settings: Settings, namespace: str, folder: Path | None) -> dict | None:
    """A gone stack's counters from its stand-in's files, read through a stand-in started on them."""
    if folder is None or not (folder / "mongo" / "read-model.db").exists():
        return None
    standin = MongoStandIn(folder / "mongo")
    try:
        standin.start(timeout=10)
        return _live_counters(settings, namespace, standin.url)
    except RuntimeError:
        return None
    finally:
        standin.stop()


def _counters(settings, namespace, state, row, found, engine) -> dict | None:
    if state == "stopped":
        found_counters = row["counters"]
    elif state != "gone":  # its read model is where the registry says it runs
        found_counters = _live_counters(settings, namespace, (row and row["mongo_url"]) or settings.mongo_url)
    elif namespace in found.mongo_databases:  # a real MongoDB keeps a gone stack's database
        found_counters = _live_counters(settings, namespace, settings.mongo_url)
    else:
        found_counters = _leftover_counters(settings, namespace, found.run_folders.get(namespace))
    if found_counters is None:
        return None
    if state == "stopped" or namespace not in found.schemas:
        return found_counters  # a stopped stack's copy already has `committed`
    return counters.with_committed(found_counters, counters.committed_events(engine, namespace))


@dataclass
class Survey:
    """What the registry and the servers say about the class (or one student): the raw material."""

    registered: dict[str, dict]  # namespace -> registry row
    found: servers.Findings
    namespaces: list[str]  # every class namespace either of them knows, of the student if given
    consumers: dict[str, int | None]  # projector queue -> consumers
    schema: str  # the course schema the registry is in

    def in_use(self, namespace: str) -> bool:
        """Anything of it alive: its kernel, its relay or its projector."""
        found = self.found
        return namespace in found.leases or namespace in found.relays or consuming(namespace, self.consumers)


def survey(settings: Settings, engine, student: str | None = None, schema: str = SCHEMA,
           run_dirs: list[Path] | None = None) -> Survey:
    registered = {row["namespace"]: row for row in StackRegistry(engine, schema).rows()}
    folders = list(run_dirs or [settings.run_dir])
    folders += sorted({Path(row["stack_dir"]).parent for row in registered.values()} - set(folders))
    found = servers.find(settings, engine, folders)
    names = sorted(n for n in set(registered) | found.namespaces
                   if student is None or naming.parse(n).belongs_to(student))
    consumers = servers.queue_consumers(settings, [q for n in names for q in projector_queues(n)])
    return Survey(registered, found, names, consumers, schema)


def stacks(settings: Settings, student: str | None = None, schema: str = SCHEMA,
           run_dirs: list[Path] | None = None, engine=None) -> list[dict]:
    """One dict per class stack (of `student`, when given): who, which notebook, state, counters."""
    own_engine = engine is None
    engine = engine or write_engine(settings)
    try:
        seen = survey(settings, engine, student, schema, run_dirs)
        owners = {naming.student_prefix(row["student"]): row["student"] for row in seen.registered.values()}
        listed = []
        for namespace in seen.namespaces:
            row, parts = seen.registered.get(namespace), naming.parse(namespace)
            state, detail = stack_state(namespace, row, seen.found, seen.consumers)
            listed.append({
                "student": row["student"] if row else owners.get(namespace[: -len(parts.notebook)], parts.student_key),
                "notebook": row["notebook"] if row else parts.notebook,
                "namespace": namespace, "state": state, "detail": detail,
                "host": row["host"] if row else None, "pid": row["pid"] if row else None,
                "delivery": row["delivery"] if row else None,
                "started_at": row["started_at"] if row else None, "stopped_at": row["stopped_at"] if row else None,
                "counters": _counters(settings, namespace, state, row, seen.found, engine),
                "measurement": row["measurement"] if row else None,
            })
        return listed
    finally:
        if own_engine:
            engine.dispose()


def students(stack_rows: list[dict], passed: dict[str, int] | None) -> list[dict]:
    """One row per student: notebooks started, stacks per state, exercises passed, counters summed."""
    by_student: dict[str, list[dict]] = defaultdict(list)
    for row in stack_rows:
        by_student[row["student"]].append(row)
    for name in passed or {}:
        by_student.setdefault(name, [])
    table = []
    for name in sorted(by_student, key=str.casefold):
        mine = by_student[name]
        row = {"student": name, "notebooks": ", ".join(sorted({r["notebook"] for r in mine}))}
        row.update({state: sum(1 for r in mine if r["state"] == state) for state in STATES})
        row["exercises passed"] = None if passed is None else passed.get(name, 0)
        for counter in counters.SHOWN:
            row[counter] = sum((r["counters"] or {}).get(counter, 0) for r in mine)
        for column, measured in MEASURED.items():  # the last measurement a notebook made on each stack
            row[column] = sum((r["measurement"] or {}).get(measured, 0) for r in mine)
        table.append(row)
    return table


def class_status(settings: Settings, student: str | None = None, schema: str = SCHEMA,
                 run_dirs: list[Path] | None = None) -> tuple[list[dict], list[dict]]:
    """(students, stacks): what `cqrs-demo class status` prints and the instructor's notebook shows."""
    engine = write_engine(settings)
    try:
        stack_rows = stacks(settings, student, schema, run_dirs, engine)
        passed = exercises_passed(engine, schema)
    finally:
        engine.dispose()
    if passed is not None and student is not None:
        passed = {name: n for name, n in passed.items() if name == student}
    return students(stack_rows, passed), stack_rows


def stack_lines(stack_rows: list[dict]) -> list[dict]:
    """The stacks as printable rows: one line each, times to the second, no nested counters."""
    def when(moment):
        return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""

    return [{
        "student": row["student"], "notebook": row["notebook"], "state": row["state"], "detail": row["detail"],
        "where": f"{row['host']} pid {row['pid']}" if row["host"] else "", "delivery": row["delivery"] or "",
        "started": when(row["started_at"]), "stopped": when(row["stopped_at"]), "namespace": row["namespace"],
    } for row in stack_rows]
