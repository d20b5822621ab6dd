"""The active relay's lease: how a relay cut off from PostgreSQL stops leading within seconds.

One relay per namespace publishes: the one whose session holds the namespace's advisory lock.
Such a lock lives as long as the session, and PostgreSQL keeps a session for as long as it
believes its client is there: behind a dead link, or with a relay that hangs, that can be
hours, and the standby waits all that time. So holding the lock is turned into a lease with a
term of `relay_lease_seconds`, kept on both sides of the link:

- PostgreSQL ends the leader's session once it has sat idle for a whole term
  (`idle_session_timeout`, set on that one session), and the lock goes with it: the standby,
  which asks for the lock every poll, takes over. A healthy leader is never idle that long: it
  talks to the database at least every third of a term (the relay caps its waits so).
- The relay counts the same term on its own clock, from the moment it sent the last statement
  PostgreSQL answered (the server cannot have started its idle clock before that). It publishes
  only in the first half of the term, and renews the lease (`SELECT 1`) before publishing
  later than that; a renewal that fails means the session, and so the lock, is gone. A
  statement still unanswered when the term is over is cut short by a watchdog that shuts the
  session's socket: by then PostgreSQL may have handed the lock on, and waiting longer for an
  answer that may never come (a link that swallows packets) would only hang the relay.

So at most one relay publishes as the leader at any time, except for a message already on its
way when a term lapses: its row was never marked, so the successor publishes it again, and the
projector's version check drops the copy. Nothing is lost either way.

Needs PostgreSQL 14 or later (`idle_session_timeout`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Callable

from sqlalchemy import event
from sqlalchemy.engine import Connection

WATCH_INTERVAL = 0.1


class LeaderLease:
    """The lease on one leader session (`conn`, which has just been granted the lock)."""

    def __init__(self, conn: Connection, term: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.term = term
        self._clock = clock
        self._answered_sent_at = float("-inf")  # nothing answered yet: not held until `begin`
        self._in_flight_since: float | None = None
        self._ended = threading.Event()
        self._cut_lock = threading.Lock()
        self._socket_fd: int | None = None
        self._timing = False
        self.cut = False  # the watchdog shut the session's socket

    # -- the term, as this relay counts it ---------------------------------------------------

    @property
    def expires_at(self) -> float:
        """The earliest moment PostgreSQL may end the session: a term after the last answered send."""
        return self._answered_sent_at + self.term

    def fresh(self) -> bool:
        """Within the first half of the term: safe to publish without renewing first."""
        return self._clock() < self._answered_sent_at + self.term / 2

    def ensure_held(self) -> None:
        """Renew the lease unless it is fresh; raises (as the connection does) if the session is gone."""
        if not self.fresh():
            self.conn.exec_driver_sql("SELECT 1")

    # -- beginning and ending ----------------------------------------------------------------

    def begin(self) -> "LeaderLease":
        """Time every statement on the session, set the server's side of the term, start the watchdog."""
        self._socket_fd = self.conn.connection.driver_connection.pgconn.socket
        event.listen(self.conn, "before_cursor_execute", self._sending)
        event.listen(self.conn, "after_cursor_execute", self._answered)
        self._timing = True
        self.conn.exec_driver_sql(f"SET idle_session_timeout = {int(self.term * 1000)}")
        threading.Thread(target=self._watch, name="relay-lease", daemon=True).start()
        return self

    def end(self) -> None:
        """Stop timing and watching. The caller resets the session before it is reused, if it still works."""
        with self._cut_lock:
            self._ended.set()
        if self._timing:
            event.remove(self.conn, "before_cursor_execute", self._sending)
            event.remove(self.conn, "after_cursor_execute", self._answered)
            self._timing = False

    # -- timing statements, and cutting one that outlives the term ---------------------------

    def _sending(self, *args) -> None:
        self._in_flight_since = self._clock()

    def _answered(self, *args) -> None:
        if self._in_flight_since is not None:
            self._answered_sent_at = self._in_flight_since
        self._in_flight_since = None

    def overdue(self) -> bool:
        """A statement is waiting for an answer, and the term it was sent in is over."""
        return self._in_flight_since is not None and self._clock() >= self.expires_at

    def _watch(self) -> None:
        while not self._ended.wait(WATCH_INTERVAL):
            if self.overdue():
                self._cut_socket()
                return

    def _cut_socket(self) -> None:
        # shutdown() wakes the thread blocked on the socket at once: libpq sees the connection
        # closed, psycopg raises OperationalError, and the relay's leadership ends there.
        with self._cut_lock:
            if self._ended.is_set():
                return
            try:
                with socket.socket(fileno=os.dup(self._socket_fd)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
                self.cut = True
            except OSError:  # already closed: nothing left to cut
                pass
