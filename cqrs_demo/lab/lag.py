"""Watching the pipeline's backlog while it works: a sampler and its charts.

Sampled every `interval` seconds, from the real stores:
- outbox backlog: committed events the relay has not yet published (PostgreSQL);
- queue depth: published events waiting in the projector queue (RabbitMQ);
- events behind: events committed minus events the projector has applied (PostgreSQL vs the
  projector's status record);
- watermark: the outbox position up to which every event is applied (`/api/projection`), and
  past watermark: committed events above it, the ones not yet known to be applied;
- oldest unpublished age: how long the oldest event not yet published has waited, as the relay
  reported it (what to alert on when the relay is stuck);
- last lag: commit-to-applied time of the latest event the projector applied.
"""

from __future__ import annotations

import threading
import time

import matplotlib.pyplot as plt
import pandas as pd
import sqlalchemy as sa

from cqrs_demo.read import queries
from cqrs_demo.runtime.health import projector_queue_counts
from cqrs_demo.write.event_log import committed_events
from cqrs_demo.write.schema import outbox


def sample(stack) -> dict:
    # The projector's status first: read after the outbox, it could count events committed
    # after the outbox was counted, and "events behind" would dip below zero.
    status = queries.projection_status(stack.read_db)
    with stack.engine.connect() as conn:
        events = committed_events()
        committed, unpublished, past_watermark = conn.execute(sa.select(  # one statement: one snapshot
            sa.select(sa.func.count()).select_from(events).scalar_subquery(),
            sa.select(sa.func.count()).where(outbox.c.published_at.is_(None)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(events).where(events.c.position > status["watermark"])
            .scalar_subquery(),
        )).one()
    counts = projector_queue_counts(stack.observer_settings)
    return {
        "time": time.time(),
        "outbox_backlog": unpublished,
        "queue_depth": counts[0] if counts else None,
        "events_behind": committed - status["applied"],
        "watermark": status["watermark"],
        "past_watermark": past_watermark,
        "oldest_unpublished_age_s": status["oldest_unpublished_age_s"],
        "last_lag_ms": status["last_lag_ms"],
    }


class LagMonitor:
    """Samples in a background thread between `start()` and `stop()`; `frame` holds the samples."""

    def __init__(self, stack, interval: float = 0.1) -> None:
        self.stack = stack
        self.interval = interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "LagMonitor":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lag-monitor", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(sample(self.stack))
            self._stop.wait(self.interval)

    def stop(self) -> pd.DataFrame:
        self._stop.set()
        if self._thread:
            self._thread.join()
        return self.frame

    def __enter__(self) -> "LagMonitor":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.samples)
        if not frame.empty:
            frame["seconds"] = frame["time"] - frame["time"].iloc[0]
        return frame


def plot_backlog(frame: pd.DataFrame, title: str = "Backlog during the burst"):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for column in ("outbox_backlog", "queue_depth", "events_behind"):
        ax.plot(frame["seconds"], frame[column], label=column.replace("_", " "))
    ax.set_xlabel("seconds")
    ax.set_ylabel("events")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_latency(frame: pd.DataFrame, column: str = "visible_ms", title: str = "Write-to-visible latency"):
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.hist(frame[column].dropna(), bins=40, color="#4c78a8")
    ax.set_xlabel("milliseconds from sending the command to reading it back")
    ax.set_ylabel("commands")
    ax.set_title(title)
    fig.tight_layout()
    return fig
