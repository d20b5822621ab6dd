"""A relay cut off from PostgreSQL loses its lead within seconds, and a standby takes over.

The cut is real: the active relay reaches PostgreSQL through a `LinkProxy` that is then
black-holed, so its session stays open on both ends while nothing gets through, which is what
a dead route or a crashed host looks like. Neither side is told; only the lease's timeouts
can notice. (`pg_terminate_backend` would be a polite goodbye, not a cut.)
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy.engine import make_url

from cqrs_demo.connections import amqp_connection
from cqrs_demo.lab.proxy import LinkProxy
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.relay import OutboxRelay
from cqrs_demo.polling import wait_until
from support import SEED_PRODUCT, Background

pytestmark = pytest.mark.timeout(120)

TAKEOVER_LIMIT = 10.0


def through(link: LinkProxy, settings):
    """`settings` with PostgreSQL reached through `link`."""
    url = make_url(settings.database_url).set(host="127.0.0.1", port=link.port)
    return settings.with_(database_url=url.render_as_string(hide_password=False))


class Observer:
    """A queue of our own on the namespace's exchange: every message the relays publish."""

    def __init__(self, settings) -> None:
        self.connection = amqp_connection(settings)
        self.channel = self.connection.channel()
        topology.declare_exchange(self.channel, settings)
        self.queue = self.channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        self.channel.queue_bind(self.queue, settings.exchange, routing_key="#")
        self.seen: list[str] = []

    def drain(self) -> list[str]:
        while (message := self.channel.basic_get(self.queue, auto_ack=True))[0] is not None:
            self.seen.append(message[1].message_id)
        return self.seen

    def close(self) -> None:
        self.connection.close()


@pytest.fixture
def db_link(settings):
    url = make_url(settings.database_url)
    link = LinkProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield link
    link.stop()


def test_a_standby_takes_over_within_seconds_of_the_active_relay_losing_the_database(
    settings, db_link, command_client, write_engine
):
    observer = Observer(settings)
    active = Background("active relay", OutboxRelay(through(db_link, settings))).start()
    standby = None
    try:
        wait_until(lambda: active.worker.is_leader, 15, what="the relay behind the link to become active")
        standby = Background("standby relay", OutboxRelay(settings)).start()
        before = command_client.post("/api/products", json=SEED_PRODUCT)
        assert before.status_code == 201
        wait_until(lambda: len(observer.drain()) == 1, 10,
                   what="the active relay to publish")
        assert not standby.worker.is_leader

        db_link.blackhole()
        cut_at = time.monotonic()
        wait_until(lambda: standby.worker.is_leader, TAKEOVER_LIMIT, interval=0.02,
                   what="the standby to take over")
        takeover = time.monotonic() - cut_at
        # The cut-off relay noticed on its own (its statement was cut short), and stopped leading.
        wait_until(lambda: not active.worker.is_leader, settings.relay_lease_seconds + 2,
                   what="the cut-off relay to notice")
        noticed = time.monotonic() - cut_at

        after = command_client.post("/api/products", json={**SEED_PRODUCT, "sku": "SKU-AFTER-CUT"})
        assert after.status_code == 201
        event_ids = wait_until(lambda: len(ids := observer.drain()) >= 2 and ids, 10,
                               what="the new leader to publish")
        assert len(event_ids) == len(set(event_ids)) == 2, event_ids  # each once: no second leader
        print(f"standby took over {takeover:.2f}s after the cut; the cut-off relay noticed after {noticed:.2f}s")
        assert takeover < TAKEOVER_LIMIT

        # The link comes back: the old relay finds the lock taken and stays a standby.
        db_link.restore()
        time.sleep(2 * settings.relay_poll_seconds)
        assert standby.worker.is_leader and not active.worker.is_leader
    finally:
        db_link.restore()
        active.halt(timeout=15)
        if standby is not None:
            standby.halt()
        observer.close()
