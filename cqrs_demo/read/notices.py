"""Notices of what the projector applied, so that a read-your-writes wait need not poll.

After each batch is in MongoDB, the projector publishes one small message on the fanout
exchange `<ns>.applied`: the (collection, id, version) of every read document the batch brought
to a version. Each query service process subscribes with a queue of its own (exclusive, gone
with its connection) and hands the notices to its `waiting.VersionWatch`, which reads the
documents that requests are waiting for only once they are there.

A notice is a hint, never the answer: the document is still read from MongoDB before it is
served. Notices are transient and unconfirmed, and one can be lost (a query service
reconnecting, the broker restarting, a stream settled after a hold, a rebuild's switch); that
costs a waiting request time, never a wrong answer, because the watch still polls, slowly while
notices flow and quickly while they do not.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable, Iterable

import pika
import pika.exceptions

from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, close_quietly
from cqrs_demo.messaging.backoff import Backoff
from cqrs_demo.messaging.topology import ReopeningChannel

log = logging.getLogger(__name__)

Notice = tuple[str, Any, int]  # (collection, document id, version it reached)
REBIND_SECONDS = 10.0
_TRANSIENT = pika.BasicProperties(content_type="application/json", delivery_mode=1)


def declare(channel, settings: Settings) -> None:
    channel.exchange_declare(settings.applied_exchange, exchange_type="fanout", durable=True)


def newest(notices: Iterable[Notice]) -> list[Notice]:
    """One notice per document: the highest version among them."""
    versions: dict[tuple[str, Any], int] = {}
    for collection, doc_id, version in notices:
        key = (collection, doc_id)
        versions[key] = max(version, versions.get(key, 0))
    return [(collection, doc_id, version) for (collection, doc_id), version in versions.items()]


class Announcer:
    """The projector's side: publishes on a channel of its own on the projector's connection."""

    def __init__(self, connection, settings: Settings) -> None:
        self.settings = settings
        self._channel = ReopeningChannel(connection)
        self._declared = None

    def announce(self, notices: Iterable[Notice]) -> None:
        body = newest(notices)
        if not body:
            return
        try:
            channel = self._channel()
            if channel is not self._declared:  # a new channel, after the broker closed the last one
                declare(channel, self.settings)
                self._declared = channel
            channel.basic_publish(self.settings.applied_exchange, "", json.dumps(body).encode(), _TRANSIENT)
        except (pika.exceptions.AMQPError, OSError) as exc:
            # Only a hint is lost; waiting requests poll. Nothing may stop the projector from
            # recording the batch next: a connection that died here fails at the acks, after the
            # record, or at the projector's next look at the connection; a channel the broker
            # closed (the exchange deleted by a reset, say) is replaced by the next notice's,
            # which declares the exchange again.
            log.warning("could not announce %d applied documents: %s", len(body), exc)


def follow(settings: Settings, on_notices: Callable[[list[Notice]], None], on_live: Callable[[bool], None],
           stop: threading.Event) -> None:
    """The query service's side: deliver every notice to `on_notices` until `stop` is set,
    reconnecting after a failure; `on_live` learns when notices start and stop flowing."""
    backoff = Backoff()
    while not stop.is_set():
        connection = None
        try:
            connection = amqp_connection(settings)
            channel = connection.channel()
            declare(channel, settings)
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, settings.applied_exchange)
            channel.basic_consume(queue, lambda ch, method, properties, body: on_notices(_read(body)), auto_ack=True)
            on_live(True)
            backoff.reset()
            bound_at = time.monotonic()
            while not stop.is_set():
                connection.process_data_events(time_limit=1.0)
                if time.monotonic() - bound_at > REBIND_SECONDS:
                    # A reset deletes the exchange, and the binding with it, while this queue lives
                    # on: declared and bound again, the notices flow again once the projector is back.
                    declare(channel, settings)
                    channel.queue_bind(queue, settings.applied_exchange)
                    bound_at = time.monotonic()
        except (pika.exceptions.AMQPError, OSError) as exc:
            on_live(False)
            delay = backoff.next()
            log.warning("notices of applied events unavailable (%s); polling, retrying in %.1fs", exc, delay)
            stop.wait(delay)
        finally:
            close_quietly(connection)
    on_live(False)


def _read(body: bytes) -> list[Notice]:
    try:
        return [(str(c), doc_id, int(v)) for c, doc_id, v in json.loads(body)]
    except (ValueError, TypeError):
        log.warning("ignoring a notice that is not a list of (collection, id, version)")
        return []
