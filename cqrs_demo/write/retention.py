"""Keeping the outbox small: published rows that have aged move to the event log, exactly once.

The outbox does two jobs. It is the relay's work queue (rows not yet published), and it was the
only record of every event ever committed. The first needs only unpublished rows; the second
needs everything, for ever. So a row that has been published and has aged past the retention
(`outbox_retention_hours`, 7 days by default) moves to `event_log`: same columns, same
position, append-only. The outbox then holds a week of events however long the system runs,
and `event_log.event_log` still reads every event, from both tables.

Moving is one statement per chunk of rows, inside one transaction:

    WITH moved AS (DELETE FROM outbox WHERE position IN (<published, aged, locked>) RETURNING ...)
    INSERT INTO event_log SELECT ... FROM moved

- Crash-safe: a chunk commits whole or not at all; a process killed mid-chunk leaves every row
  where it was, and running the prune again finishes the job.
- Exactly once: the rows are locked as they are chosen (`FOR UPDATE SKIP LOCKED`), so two
  prunes at once move disjoint rows, and a row is inserted only if this very statement deleted it.
- Never an unpublished row: the choice is made on the locked, current row, `published_at` set.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cqrs_demo.write.schema import event_log_table, outbox

CHUNK = 1000
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> timedelta:
    """`90s`, `15m`, `12h`, `7d`, `2w`, or a bare number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text.lower())
    if not match:
        raise ValueError(f"not a duration: {text!r}; write it like 90s, 15m, 12h, 7d or 2w")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * UNITS[unit or "s"])


@dataclass
class PruneReport:
    """What a prune moved, or with `dry_run`, what it would have moved."""

    older_than_seconds: float
    cutoff: datetime
    dry_run: bool
    moved: int = 0
    first_position: int | None = None
    last_position: int | None = None

    def add(self, positions: list[int]) -> None:
        if not positions:
            return
        self.moved += len(positions)
        low, high = min(positions), max(positions)
        self.first_position = low if self.first_position is None else min(self.first_position, low)
        self.last_position = high if self.last_position is None else max(self.last_position, high)

    def as_dict(self) -> dict:
        return {**asdict(self), "cutoff": self.cutoff.isoformat()}


def cutoff(conn: Connection, older_than: timedelta) -> datetime:
    """The moment rows must have been published before, on the database's clock (which stamped them)."""
    return conn.scalar(sa.select(sa.func.now() - sa.literal(older_than, sa.Interval())))


def _movable(before: datetime, limit: int):
    return (
        sa.select(outbox.c.position)
        .where(outbox.c.published_at.is_not(None), outbox.c.published_at < before)
        .order_by(outbox.c.position)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


def move_chunk(conn: Connection, before: datetime, limit: int = CHUNK) -> list[int]:
    """Move up to `limit` rows published before `before` from the outbox to the event log, in one
    statement; their positions. Atomic with the caller's transaction (or the statement itself)."""
    columns = [column.name for column in outbox.c]
    moved = outbox.delete().where(outbox.c.position.in_(_movable(before, limit))).returning(*outbox.c).cte("moved")
    archive = (
        event_log_table.insert()
        .from_select(columns, sa.select(*(moved.c[name] for name in columns)))
        .returning(event_log_table.c.position)
    )
    return list(conn.scalars(archive))


def movable_now(conn: Connection, before: datetime) -> tuple[int, int | None, int | None]:
    """(how many rows a prune would move, the lowest position, the highest) without moving any."""
    return tuple(conn.execute(
        sa.select(sa.func.count(), sa.func.min(outbox.c.position), sa.func.max(outbox.c.position))
        .where(outbox.c.published_at.is_not(None), outbox.c.published_at < before)
    ).one())


def prune(engine: Engine, older_than: timedelta, dry_run: bool = False, chunk: int = CHUNK,
          before_commit: Callable[[list[int]], None] | None = None) -> PruneReport:
    """Move every row published more than `older_than` ago to the event log, a chunk per transaction.

    `before_commit` runs inside each chunk's transaction, after the move, before COMMIT: where a
    crash must lose nothing (the `outbox.prune_before_commit` failpoint).
    """
    with engine.connect() as conn:
        before = cutoff(conn, older_than)
        report = PruneReport(older_than.total_seconds(), before, dry_run)
        if dry_run:
            report.moved, report.first_position, report.last_position = movable_now(conn, before)
            return report
    while True:
        with engine.begin() as conn:
            positions = move_chunk(conn, before, chunk)
            if positions and before_commit:
                before_commit(positions)
        report.add(positions)
        if len(positions) < chunk:
            return report
