"""The projector's notices of what it applied, through the real broker, and what a query service
does with them: a read-your-writes request is answered on the notice, without polling."""

from __future__ import annotations

import functools
import threading
import time

from cqrs_demo.connections import amqp_connection
from cqrs_demo.lab.proxy import broker_link
from cqrs_demo.messaging.relay import OutboxRelay
from cqrs_demo.polling import wait_until
from cqrs_demo.read import notices, projection
from cqrs_demo.read.projector import Projector
from cqrs_demo.read.waiting import VersionWatch
from support import Background

LAMP = {"name": "Lamp", "price": 5.00, "quantity": 1, "sku": "N-1"}


class Follower:
    """`notices.follow` in a thread, keeping what it is told."""

    def __init__(self, settings) -> None:
        self.received: list = []
        self.live: list[bool] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=notices.follow, daemon=True,
                                       args=(settings, self.received.extend, self.live.append, self.stop))
        self.thread.start()
        wait_until(lambda: self.live == [True], timeout=10, what="subscribed to the notices")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def test_every_query_service_hears_each_announcement_once_per_document(settings):
    first, second = Follower(settings), Follower(settings)
    connection = amqp_connection(settings)
    try:
        announcer = notices.Announcer(connection, settings)
        announcer.announce([("products", 7, 2), ("products", 7, 3), ("orders", 1, 1)])
        announcer.announce([])  # nothing applied: nothing sent
        for follower in (first, second):
            wait_until(lambda f=follower: len(f.received) >= 2, timeout=10, what="the notice received")
            time.sleep(0.1)
            assert sorted(follower.received) == [("orders", 1, 1), ("products", 7, 3)]
    finally:
        connection.close()
        first.close()
        second.close()
    assert first.live[-1] is False  # told that notices stopped when it stopped


def test_notices_flow_again_after_a_reset_deleted_their_exchange(settings, monkeypatch):
    monkeypatch.setattr(notices, "REBIND_SECONDS", 0.2)
    follower = Follower(settings)
    connection = amqp_connection(settings)
    try:
        announcer = notices.Announcer(connection, settings)
        announcer.announce([("products", 1, 1)])
        wait_until(lambda: follower.received == [("products", 1, 1)], timeout=10, what="the first notice")
        connection.channel().exchange_delete(settings.applied_exchange)

        def heard_again() -> bool:
            announcer.announce([("products", 1, 2)])  # the first ones may be lost: they are hints
            connection.process_data_events(time_limit=0.1)
            return ("products", 1, 2) in follower.received

        wait_until(heard_again, timeout=10, what="a notice heard after the exchange came back")
        assert follower.live == [True]  # the subscription itself never dropped
    finally:
        connection.close()
        follower.close()


def test_a_notice_that_cannot_be_sent_is_dropped_without_an_error(settings):
    """The projector announces before it records the batch's status; a broker gone at that
    moment must not cost the record (the acks after it fail, and the batch is redelivered; with
    acknowledgement on delivery, the projector finds the connection closed and reconnects)."""
    connection = amqp_connection(settings)
    announcer = notices.Announcer(connection, settings)
    announcer.announce([("products", 1, 1)])
    connection.close()
    announcer.announce([("products", 1, 2)])  # no exception: a hint lost


def test_a_projector_whose_broker_goes_away_while_it_announces_carries_on(settings, command_client, read_db):
    """With acknowledgement on delivery (naive mode's), nothing after the announcement talks to
    the broker: the lost connection must still be noticed, and the projector reconnect."""
    link, amqp_url = broker_link(settings.amqp_url)
    link.start()

    class CutWhileAnnouncing(Projector):
        cuts = 0

        def _announce(self, results) -> None:
            if not self.cuts:
                self.cuts += 1
                link.cut()
                link.restore()
                self._next_tick = time.monotonic() + 60  # the consuming loop, not a tick, must notice
            super()._announce(results)

    through_link = settings.with_(amqp_url=amqp_url, projector_ack="auto")
    relay = Background("relay", OutboxRelay(settings)).start()
    projector = Background("projector", CutWhileAnnouncing(through_link)).start()
    try:
        created = command_client.post("/api/products", json=LAMP).get_json()
        products = read_db[projection.PRODUCTS]
        wait_until(lambda: products.find_one({"_id": created["id"]}), timeout=20, what="the product projected")
        command_client.patch(f"/api/products/{created['id']}", json={"price": 6.00})
        wait_until(lambda: products.find_one({"_id": created["id"], "version": 2}), timeout=20,
                   what="the update projected after the projector reconnected")
        assert projector.thread.is_alive()
    finally:
        relay.halt()
        projector.halt()
        link.stop()


def test_a_waiting_request_is_answered_on_the_projectors_notice(settings, command_client, read_db, pipeline):
    """The real pipeline: the watch reads the product once its notice arrives, and not before."""
    reads = []

    class CountingCollection:
        def __init__(self, collection) -> None:
            self.collection = collection

        def find(self, query):
            reads.append(query)
            return self.collection.find(query)

        def find_one(self, query):
            reads.append(query)
            return self.collection.find_one(query)

    watch = VersionWatch({projection.PRODUCTS: CountingCollection(read_db[projection.PRODUCTS])},
                         feed=functools.partial(notices.follow, settings), safety_interval=30.0)
    try:
        watch.wait(projection.PRODUCTS, 0, 1, timeout=0.01)  # starts the watch and its subscription
        wait_until(lambda: watch._live, timeout=10, what="notices flowing")
        created = command_client.post("/api/products", json=LAMP)
        assert created.status_code == 201, created.get_json()
        key = (projection.PRODUCTS, created.get_json()["id"])
        wait_until(lambda: watch._known.get(key) == 1, timeout=10, what="the notice of version 1")
        reads.clear()
        updated = command_client.patch(f"/api/products/{key[1]}", json={"price": 6.00}).get_json()
        started = time.monotonic()
        doc = watch.wait(*key, updated["version"], timeout=10)
        assert doc["version"] == updated["version"] == 2
        assert time.monotonic() - started < 5  # not the safety poll's 30 s
        assert len(reads) == 1  # no first look, no polling: the one read the notice asked for
    finally:
        watch.close()
