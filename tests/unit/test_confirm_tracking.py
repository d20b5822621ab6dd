"""How `ConfirmedPublisher` counts confirms, whatever order and grouping the broker answers in."""

from __future__ import annotations

from types import SimpleNamespace

import pika.spec
import pytest

from cqrs_demo.messaging.confirms import ConfirmedPublisher


class FakeChannel:
    """Confirm mode is on at once; waiting checks that the publisher's condition already holds."""

    def __init__(self) -> None:
        self._impl = self
        self.connection = None

    def confirm_delivery(self, ack_nack_callback, callback) -> None:
        callback(SimpleNamespace())

    def add_on_return_callback(self, callback) -> None:
        pass

    def basic_publish(self, **message) -> None:
        pass

    def _flush_output(self, *done) -> None:
        assert all(ready() for ready in done), "waited on confirms that never came"


def _answer(publisher, method) -> None:
    publisher._on_confirm(SimpleNamespace(method=method))


def _publisher(messages: int) -> ConfirmedPublisher:
    publisher = ConfirmedPublisher(FakeChannel())
    for _ in range(messages):
        publisher.publish("exchange", "key", b"{}")
    return publisher


def test_single_confirms_out_of_order_count_once_all_have_come():
    publisher = _publisher(3)
    _answer(publisher, pika.spec.Basic.Ack(delivery_tag=3))
    _answer(publisher, pika.spec.Basic.Ack(delivery_tag=1))
    with pytest.raises(AssertionError):
        publisher.wait()
    _answer(publisher, pika.spec.Basic.Ack(delivery_tag=2))
    publisher.wait()


def test_one_multiple_confirm_answers_every_tag_up_to_it():
    publisher = _publisher(4)
    _answer(publisher, pika.spec.Basic.Ack(delivery_tag=4, multiple=True))
    publisher.wait()


def test_a_refusal_among_confirms_is_raised_once():
    publisher = _publisher(2)
    _answer(publisher, pika.spec.Basic.Nack(delivery_tag=1))
    _answer(publisher, pika.spec.Basic.Ack(delivery_tag=2))
    with pytest.raises(pika.exceptions.NackError):
        publisher.wait()
    publisher.wait()
