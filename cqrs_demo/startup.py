"""Waiting for the servers a process needs before it starts work: retries with back-off, logged.

A process of the stack may well start before its servers answer: a machine booting, docker-compose
starting every container at once, a database restarting. Exiting would leave the stack half up
until someone notices; instead the process waits. It tries, logs what it waits for and why the
try failed, backs off (quick retries first, then every few seconds), and carries on the moment
the server answers. Only an error that means "not reachable yet" is retried; anything else (a
bad schema, a bug) still stops the process with its message.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

import pika.exceptions
import psycopg
import pymongo.errors
import sqlalchemy as sa

from cqrs_demo.messaging.backoff import Backoff

log = logging.getLogger(__name__)

POSTGRESQL_DOWN = (psycopg.OperationalError, sa.exc.OperationalError, sa.exc.InterfaceError)
RABBITMQ_DOWN = (pika.exceptions.AMQPConnectionError, pika.exceptions.StreamLostError, ConnectionError, OSError)
MONGODB_DOWN = (pymongo.errors.ConnectionFailure,)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def wait_for(what: str, attempt: Callable[[], object], unreachable: tuple[type[BaseException], ...],
             stop: threading.Event | None = None, backoff: Backoff | None = None) -> bool:
    """Call `attempt` until it does not raise one of `unreachable`; True then.

    False if `stop` is set while waiting (the process was asked to exit before its server came up).
    Any other exception from `attempt` is raised at once.
    """
    backoff = backoff or Backoff()
    waiting = stop if stop is not None else threading.Event()  # never set: only its timed wait is used
    tries = 0
    while not (stop is not None and stop.is_set()):
        try:
            attempt()
        except unreachable as exc:
            tries += 1
            delay = backoff.next()
            log.warning("waiting for %s (try %d: %s); trying again in %.1fs", what, tries, _first_line(exc), delay)
            waiting.wait(delay)
            continue
        if tries:
            log.info("%s answers after %d failed tr%s", what, tries, "y" if tries == 1 else "ies")
        return True
    return False
