"""Contract evolution on the real servers: the write side switches to version 2 of the product
events; a projector that knows only version 1 holds the product (parks its events, applies
nothing wrongly, dead-letters nothing), and a projector that knows version 2, taking over, applies
them in order and releases the hold. A projector that knows both reads version 1 through its
upcaster."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from support import Background

from cqrs_demo.messaging import events
from cqrs_demo.polling import wait_until
from cqrs_demo.read import projection
from cqrs_demo.read.upcasting import UPCASTERS
from cqrs_demo.write.app import create_app
from cqrs_demo.write.schema import outbox

from test_poison_handling import (
    PARKED, POISONED, assert_equal, create, read_version, update, wait_caught_up, wait_released,
)

pytestmark = pytest.mark.timeout(120)

V1_ONLY = {events.PRODUCT_CREATED: 1, events.PRODUCT_UPDATED: 1}


@pytest.fixture
def v2_client(settings):
    app = create_app(settings.with_(product_event_version=2))
    yield app.test_client()
    app.extensions["cqrs"]["engine"].dispose()


def schema_versions(engine, pid: int) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(outbox.c.schema_version).where(outbox.c.aggregate_id == pid)
                                 .order_by(outbox.c.aggregate_version)))


def workers(settings, upcasters=None) -> list[Background]:
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.read.projector import Projector

    return [Background("relay", OutboxRelay(settings)).start(),
            Background("projector", Projector(settings, upcasters=upcasters)).start()]


def test_the_write_side_emits_v2_behind_a_setting_and_a_projector_applies_both(
    settings, command_client, v2_client, write_engine, read_db
):
    running = workers(settings)
    try:
        pid = create(command_client, 1)
        update(v2_client, pid, 5)
        response = v2_client.patch(f"/api/products/{pid}", json={"price": 7.25})
        assert response.status_code == 200
        update(command_client, pid, 6)  # and back to v1: both are read
        assert schema_versions(write_engine, pid) == [1, 2, 2, 1]
        with write_engine.connect() as conn:
            payload = conn.scalar(sa.select(outbox.c.payload).where(outbox.c.aggregate_version == 3))
        assert payload["price"] == {"amount": "7.25", "currency": "EUR"}
        wait_caught_up(write_engine, read_db, pid)
        assert read_db[projection.PRODUCTS].find_one({"_id": pid})["price_cents"] == 725
        assert_equal(write_engine, read_db)
    finally:
        for worker in running:
            worker.halt()


def test_an_old_projector_holds_v2_events_until_a_new_one_applies_them_in_order(
    settings, command_client, v2_client, write_engine, read_db, broker
):
    old = workers(settings, upcasters=UPCASTERS.knowing_only(V1_ONLY))
    try:
        pid, other = create(command_client, 1), create(command_client, 2)
        update(command_client, pid, 1)  # v2 of the stream, schema 1: applied
        update(v2_client, pid, 2)  # schema 2 from here on: held
        update(v2_client, pid, 3)
        update(command_client, pid, 4)  # schema 1 again, but behind a held event: parked
        update(v2_client, other, 9)  # another product's schema 2 event: held too
        third = create(command_client, 3)  # a product all in v1 flows on
        update(command_client, third, 1)
        wait_until(lambda: read_version(read_db, third) == 2, 20, what="a v1 product applied")
        wait_until(lambda: read_db[PARKED].count_documents({"key": f"product:{pid}"}) == 3, 20, what="parked")
        assert read_version(read_db, pid) == 2  # nothing applied wrongly, nothing skipped
        assert read_db[POISONED].find_one({"_id": f"product:{pid}"})["waits_for"] == 4  # the last unknown one
        assert read_db[POISONED].find_one({"_id": f"product:{other}"}) is not None
        assert broker.dead_letters(1, timeout=0.5) == []  # held, not dead-lettered as malformed
        status = read_db[projection.STATUS].find_one({"_id": "projector"})
        assert status.get("dead_lettered", 0) == 0
    finally:
        for worker in old:
            worker.halt()

    new = workers(settings)  # knows v2: settles what the old one held, when it starts
    try:
        wait_caught_up(write_engine, read_db, pid)
        wait_caught_up(write_engine, read_db, other)
        wait_released(read_db, pid)
        wait_released(read_db, other)
        update(v2_client, pid, 5)
        wait_caught_up(write_engine, read_db, pid)
        assert_equal(write_engine, read_db)
        doc = read_db[projection.PRODUCTS].find_one({"_id": pid})
        assert doc["quantity"] == 5 and doc["version"] == 6
    finally:
        for worker in new:
            worker.halt()
