"""Failpoints: named places where a process can be told to die, to show what a crash there does.

The workbench arms one by creating a file `<run dir>/<namespace>/failpoints/<name>`; the next
time the process passes that place it removes the file and kills itself with SIGKILL, exactly
as a power cut would: no cleanup, no goodbye. Unarmed, a failpoint costs one `stat` call.

- `relay.before_mark`: the broker has confirmed a batch, the outbox rows are not yet marked.
- `projector.before_ack`: MongoDB has the change, RabbitMQ has not been acknowledged.
- `outbox.prune_before_commit`: a chunk of rows is deleted from the outbox and inserted into
  the event log, and the transaction is not yet committed.
- `projector.applying`: armed with an event id (`arm(..., event_id=...)`), it kills the projector
  each time it is about to apply that event, and stays armed until `disarm`: a message that
  kills whoever applies it, as a payload that crashes a library would.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from cqrs_demo.config import Settings

RELAY_BEFORE_MARK = "relay.before_mark"
PROJECTOR_BEFORE_ACK = "projector.before_ack"
PRUNE_BEFORE_COMMIT = "outbox.prune_before_commit"
PROJECTOR_APPLYING = "projector.applying"
NAMES = (RELAY_BEFORE_MARK, PROJECTOR_BEFORE_ACK, PRUNE_BEFORE_COMMIT, PROJECTOR_APPLYING)


def path(settings: Settings, name: str) -> Path:
    if name not in NAMES:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(NAMES)}")
    return settings.stack_dir / "failpoints" / name


def arm(settings: Settings, name: str, event_id: str | None = None) -> None:
    target = path(settings, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(event_id or "")


def disarm(settings: Settings, name: str) -> None:
    path(settings, name).unlink(missing_ok=True)


def trip(settings: Settings, name: str) -> None:
    """Die here if `name` is armed."""
    target = settings.stack_dir / "failpoints" / name
    if target.exists():
        target.unlink(missing_ok=True)
        os.kill(os.getpid(), signal.SIGKILL)


def trip_applying(settings: Settings, event_ids) -> None:
    """Die here if `projector.applying` is armed with one of these event ids; it stays armed."""
    target = settings.stack_dir / "failpoints" / PROJECTOR_APPLYING
    if target.exists():
        try:
            armed = target.read_text().strip()
        except OSError:
            return
        if armed and armed in event_ids:
            os.kill(os.getpid(), signal.SIGKILL)
