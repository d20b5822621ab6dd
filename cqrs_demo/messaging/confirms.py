"""Publisher confirms for a batch: every message sent at once, then one wait for all their confirms.

pika's `BlockingChannel` in confirm mode waits for each message's confirm before it returns from
`basic_publish`, so a batch of n messages costs n round trips to the broker, each behind the
broker's write to disk. AMQP itself does not ask for that: confirms carry delivery tags (the
channel's publish count, from 1) and may confirm many at once (`multiple`). So this publisher
sends on the channel's asynchronous half, which pika's blocking channel wraps, and waits once,
on the blocking connection's own loop, until every tag is acknowledged or refused.

The guarantee is the same as one at a time: `wait` returns only when the broker has taken
responsibility for every message, and raises when it refused one (`NackError`) or could not
route one sent as `mandatory` (`UnroutableError`), naming the returned messages. A caller that
records "published" only after `wait` returns loses nothing; a failed batch is sent again whole,
and the read side drops the copies.
"""

from __future__ import annotations

import pika.exceptions
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel, ReturnedMessage


class ConfirmedPublisher:
    """Sends messages on `channel` in confirm mode; `wait` for the confirms of all sent so far."""

    def __init__(self, channel: BlockingChannel) -> None:
        self.channel = channel
        self._async = channel._impl  # the channel pika's blocking wrapper drives
        self._last_tag = 0
        self._confirmed_through = 0  # every tag up to here has an answer
        self._answered: set[int] = set()  # answers above it, when single confirms arrive out of order
        self._nacked: list[int] = []
        self._returned: list[ReturnedMessage] = []
        selected: list[object] = []
        self._async.confirm_delivery(ack_nack_callback=self._on_confirm, callback=selected.append)
        channel._flush_output(lambda: bool(selected))
        self._async.add_on_return_callback(self._on_return)

    @property
    def connection(self):
        return self.channel.connection

    def publish(self, exchange: str, routing_key: str, body: bytes | str,
                properties: pika.BasicProperties | None = None, mandatory: bool = False) -> None:
        """Queue one message for sending; nothing is confirmed until `wait`."""
        self._async.basic_publish(exchange=exchange, routing_key=routing_key, body=body,
                                  properties=properties, mandatory=mandatory)
        self._last_tag += 1

    def wait(self) -> None:
        """Until the broker has answered every message sent; raises if it refused or returned any."""
        self.channel._flush_output(lambda: self._confirmed_through >= self._last_tag)
        nacked, returned = self._nacked, self._returned
        self._nacked, self._returned = [], []
        if nacked:
            raise pika.exceptions.NackError(returned)
        if returned:
            raise pika.exceptions.UnroutableError(returned)

    def _on_confirm(self, frame) -> None:
        method = frame.method
        tag = method.delivery_tag
        if isinstance(method, pika.spec.Basic.Nack):
            self._nacked.append(tag)
        if method.multiple:
            self._answered = {t for t in self._answered if t > tag}
            self._confirmed_through = max(self._confirmed_through, tag)
        else:
            self._answered.add(tag)
        while self._confirmed_through + 1 in self._answered:
            self._confirmed_through += 1
            self._answered.discard(self._confirmed_through)

    def _on_return(self, channel, method, properties, body) -> None:
        # The broker returns an unroutable mandatory message before it confirms it.
        self._returned.append(ReturnedMessage(method, properties, body))
