"""The order of publication, and how the read side can know "everything up to here is applied".

An outbox position is taken when a command *inserts* its event, but transactions commit in any
order, and a rolled-back one leaves a hole for ever. So "the highest position applied" says
nothing about the positions below it: one may belong to a transaction still open, or to an event
published late, or to nothing at all. The read side cannot tell these apart on its own: the
relay, which sees the outbox, tells it.

1. **The settled horizon.** A position below the outbox sequence's current value was taken by
   a transaction that is either finished (its row is committed, or the position is a hole) or
   still writing to the outbox. So the relay notes the sequence's value, then the transactions
   writing to the outbox right now (they hold a lock on it); once every one of those has ended,
   every position up to the noted value is *settled*: committed and visible, or a hole. Without
   concurrent writers (the common case) a value is settled at once.
2. **Dense publication numbers.** Before publishing a batch, the relay numbers its rows 1, 2,
   3... in one statement that also advances a one-row counter, so the numbers have no holes, and
   stores each row's number (`sequence`) and its *published-through* mark: the outbox position up
   to which every event is, by then, numbered at or below this one, or a hole. A row numbered
   but not yet confirmed when the relay dies is republished with the same number and mark.
3. **The read side** (`read.watermark`) records the number of every event it has applied, and
   advances its watermark over *contiguous* numbers only: when every number up to `n` is
   applied, every event at or below the published-through mark of those numbers is applied, and
   that mark is the watermark. An event held behind a poison message, parked or dead-lettered
   keeps its number unapplied, so the watermark stops below it until it is applied.

The relay publishes eagerly, out of position order when a row commits late; only the mark waits
for the horizon, so a long transaction delays the watermark, never the events behind it.

This assumes that a command's transaction has its transaction id before it takes an outbox
position, which holds because every command writes its aggregate's row before its event.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from cqrs_demo.config import Settings


@dataclass(frozen=True)
class OutboxState:
    """What one look at the outbox says: the settled horizon and the oldest unpublished event.

    "Oldest" is the unpublished event with the lowest position (found through the index of
    unpublished rows, so a look costs the same with a backlog of 20,000): it took its position,
    and its `committed_at` clock, before every other one still waiting.
    """

    settled: int
    oldest_unpublished: datetime | None


class Horizon:
    """Tracks the settled horizon across relay cycles (step 1 of the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        schema = settings.schema
        self.settled = 0
        self._candidate: tuple[int, list[str]] | None = None
        # LATERAL makes the lock scan run after the sequence is read: a writer that took its
        # position before the sequence was read has its lock by then, or has ended.
        self._look = sa.text(f"""
            SELECT s.last_value AS last_value, w.writers AS writers,
                   NOT EXISTS (SELECT 1 FROM pg_locks l
                               WHERE l.locktype = 'virtualxid' AND l.virtualxid = ANY(CAST(:waiting AS text[])))
                       AS waited_ended,
                   (SELECT committed_at FROM "{schema}".outbox WHERE published_at IS NULL
                    ORDER BY position LIMIT 1) AS oldest
            FROM (SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS last_value
                  FROM "{schema}".outbox_position_seq) s,
                 LATERAL (SELECT coalesce(array_agg(l.virtualtransaction::text), '{{}}') AS writers
                          FROM pg_locks l
                          WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.granted
                            AND s.last_value IS NOT NULL
                            AND l.relation = CAST(:outbox AS regclass) AND l.pid <> pg_backend_pid()) w
        """)
        self._outbox = f'"{schema}".outbox'

    def look(self, conn: Connection) -> OutboxState:
        waiting = self._candidate[1] if self._candidate else []
        row = conn.execute(self._look, {"waiting": waiting, "outbox": self._outbox}).one()
        if self._candidate and row.waited_ended:
            self.settled = max(self.settled, self._candidate[0])
            self._candidate = None
        if not row.writers:
            self.settled = max(self.settled, row.last_value)
            self._candidate = None
        elif self._candidate is None:
            self._candidate = (row.last_value, list(row.writers))
        return OutboxState(self.settled, row.oldest)


def number_batch(conn: Connection, settings: Settings, settled: int, limit: int) -> list:
    """Number the next unpublished rows (oldest position first) and return them, numbered.

    Each row's published-through mark is the highest position P at or below the settled horizon
    such that every committed row up to P is numbered at or below this row's number: the
    position just before the next row of the batch, or for the last row, the horizon itself
    when the batch took every unnumbered row, else its own position.
    """
    rows = conn.execute(_number_batch(settings.schema), {"limit": limit, "settled": settled}).all()
    return sorted(rows, key=lambda row: row.sequence)


@functools.cache
def _number_batch(schema: str) -> sa.TextClause:
    return sa.text(f"""
        WITH batch AS (
            SELECT position FROM "{schema}".outbox
            WHERE published_at IS NULL AND sequence IS NULL
            ORDER BY position LIMIT :limit
        ), size AS (
            SELECT count(*) AS n, max(position) AS last FROM batch
        ), counter AS (
            UPDATE "{schema}".publication SET next_sequence = next_sequence + (SELECT n FROM size)
            WHERE id = 1 RETURNING next_sequence - (SELECT n FROM size) AS first
        ), numbered AS (
            SELECT b.position,
                   c.first + row_number() OVER (ORDER BY b.position) - 1 AS sequence,
                   lead(b.position) OVER (ORDER BY b.position) AS next_position
            FROM batch b CROSS JOIN counter c
        )
        UPDATE "{schema}".outbox o
        SET sequence = n.sequence,
            published_through = LEAST(
                CAST(:settled AS bigint),
                CASE WHEN n.next_position IS NOT NULL THEN n.next_position - 1
                     WHEN (SELECT n FROM size) < :limit THEN CAST(:settled AS bigint)
                     ELSE n.position END)
        FROM numbered n
        WHERE o.position = n.position
        RETURNING o.*
    """)


# How long a batch's last row waits for writers still committing below it (`settle_tail`).
TAIL_LOOKS = 10
TAIL_PAUSE_SECONDS = 0.002


def settle_tail(conn: Connection, settings: Settings, horizon: Horizon, last):
    """The batch's last row, its mark raised once the writers that held the horizon back have
    committed, before it is published.

    A batch numbered while a writer was still committing carries the horizon of that moment,
    below rows the batch itself holds (the writer committed between the look and the numbering).
    If no event follows, nothing else would carry the mark past them, and the watermark would
    stay below the newest event. Such writers are mid-commit: a few milliseconds. After
    `TAIL_LOOKS` looks the row goes as it is; a long transaction's own event carries the mark
    when it commits.
    """
    for _ in range(TAIL_LOOKS):
        if last.published_through >= last.position:
            break
        settled = horizon.look(conn).settled
        if settled > last.published_through:
            last = raise_tail_mark(conn, settings, last, settled)
        else:
            time.sleep(TAIL_PAUSE_SECONDS)
    return last


def raise_tail_mark(conn: Connection, settings: Settings, row, settled: int):
    """`row` again, its mark raised towards `settled` only as far as `number_batch` would have
    put it: up to the horizon, and below the first committed row not numbered yet."""
    return conn.execute(_raise_tail_mark(settings.schema), {"settled": settled, "position": row.position}).one()


@functools.cache
def _raise_tail_mark(schema: str) -> sa.TextClause:
    return sa.text(f"""
        UPDATE "{schema}".outbox
        SET published_through = GREATEST(published_through, LEAST(
            CAST(:settled AS bigint),
            coalesce((SELECT min(position) FROM "{schema}".outbox
                      WHERE published_at IS NULL AND sequence IS NULL), CAST(:settled AS bigint) + 1) - 1))
        WHERE position = :position
        RETURNING *
    """)


def numbered_unpublished(conn: Connection, settings: Settings, limit: int) -> list:
    """Rows numbered by a relay that died before marking them published: to publish again, as they are."""
    return conn.execute(
        sa.text(f'SELECT * FROM "{settings.schema}".outbox WHERE published_at IS NULL AND sequence IS NOT NULL '
                "ORDER BY sequence LIMIT :limit"),
        {"limit": limit},
    ).all()
