"""One running stack per namespace: a PostgreSQL session-level advisory lock, held while it runs.

A notebook's stack empties its namespace when it starts, so two kernels running the same
notebook for the same student would empty and overwrite each other's data. Before it touches
anything, a `LabStack` takes its namespace's lease: `pg_try_advisory_lock` on a session of its
own. The lock is PostgreSQL's, so it works across machines (two JupyterHub servers of one
student), and PostgreSQL releases it when that session ends, however the kernel died: a dead
kernel's namespace is free again, and the next start reclaims what it left.

The session is named `cqrs-lab:<namespace>`, so `pg_locks` shows from any machine which
namespaces are held (the instructor's view reads it).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa

from cqrs_demo.config import Settings
from cqrs_demo.connections import session_engine
from cqrs_demo.runtime.stack import StackError

APPLICATION_PREFIX = "cqrs-lab:"


def lease_key(namespace: str) -> int:
    """A 64-bit advisory-lock key of its own for each namespace (signed, as PostgreSQL's bigint)."""
    digest = hashlib.blake2b(f"lab lease:{namespace}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def application_name(namespace: str) -> str:
    return APPLICATION_PREFIX + namespace


class NotebookAlreadyRunning(StackError):
    """The same student's same notebook runs in another kernel; this one must not start."""


def already_running_message(notebook: str, student: str, holder: dict | None) -> str:
    """What the second kernel says: which notebook, where the first one runs, and what to do."""
    if holder:
        since = holder["started_at"]
        since = since.strftime("%Y-%m-%d %H:%M:%S %Z") if isinstance(since, datetime) else since
        where = f"in another kernel (pid {holder['pid']} on host {holder['host']}, started {since})"
    else:
        where = "in another kernel that is still starting it"
    return (
        f"notebook {notebook!r} is already running for student {student!r} {where}. "
        "Both would use the same data, and this start would empty it under the other one, so it did "
        "not start. Stop the other run first (in its notebook, `stack.stop()`, or Kernel > Shut Down "
        "Kernel), then run this cell again; or, to run both, give this one another label, e.g. "
        f"LabStack({(notebook + '_b')[:14]!r})."
    )


class NamespaceLease:
    """`acquire()` is True when this process now holds the namespace; `release()` gives it back."""

    def __init__(self, settings: Settings) -> None:
        self.namespace = settings.namespace
        self._engine = session_engine(settings, application_name(settings.namespace))
        self._conn: sa.Connection | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self._engine.connect()
        try:
            taken = conn.scalar(sa.select(sa.func.pg_try_advisory_lock(lease_key(self.namespace))))
        except BaseException:
            conn.close()
            raise
        if not taken:
            conn.close()
            return False
        self._conn = conn  # the lock lives exactly as long as this session
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:  # closing the session would release it too; unlocking first says so in the server's log
            conn.scalar(sa.select(sa.func.pg_advisory_unlock(lease_key(self.namespace))))
        except sa.exc.SQLAlchemyError:
            pass
        finally:
            conn.close()
