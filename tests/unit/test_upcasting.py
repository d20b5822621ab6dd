"""Upcasting: every schema version of an event reaches the projection as the newest one known,
and a version newer than that is refused as unknown (to be held), never read wrongly."""

from __future__ import annotations

import pytest

from cqrs_demo.config import Settings
from cqrs_demo.messaging import events
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.read import projection
from cqrs_demo.read.upcasting import UPCASTERS, UnknownSchemaVersion, Upcasters
from cqrs_demo.write.products import event_payload

V1_PAYLOAD = {"name": "Lamp", "description": "d", "price": "12.50", "quantity": 3, "sku": "L-1"}
V2_PAYLOAD = {**V1_PAYLOAD, "price": {"amount": "12.50", "currency": "EUR"}}


def event(type: str = events.PRODUCT_UPDATED, schema_version: int = 1, payload: dict | None = None, **kw) -> Event:
    fields = dict(event_id="e-1", type=type, aggregate_type="product", aggregate_id=7, aggregate_version=2,
                  position=11, committed_at="2024-06-01T12:00:00+00:00",
                  payload=V1_PAYLOAD if payload is None else payload, schema_version=schema_version)
    fields.update(kw)
    return Event(**fields)


def test_the_newest_versions_known():
    assert UPCASTERS.newest(events.PRODUCT_CREATED) == UPCASTERS.newest(events.PRODUCT_UPDATED) == 2
    for other in (events.PRODUCT_DELETED, events.PRODUCT_STOCK_CHANGED, events.ORDER_PLACED, events.ORDER_CANCELLED):
        assert UPCASTERS.newest(other) == 1


@pytest.mark.parametrize("type", [events.PRODUCT_CREATED, events.PRODUCT_UPDATED])
def test_a_v1_product_event_is_read_as_v2(type):
    upcast = UPCASTERS.upcast(event(type))
    assert upcast.schema_version == 2 and upcast.payload == V2_PAYLOAD
    assert upcast.event_id == "e-1" and upcast.aggregate_version == 2 and upcast.position == 11


def test_v1_and_v2_of_the_same_change_project_identically():
    trace = {"delivered_at": "t"}

    def comparable(e):
        return [(c.collection, c.doc_id, c.version, {k: v for k, v in c.set.items() if k not in ("projected_at", "trace")},
                 c.inc) for c in projection.changes(e, trace)]

    assert comparable(event(schema_version=1)) == comparable(event(schema_version=2, payload=V2_PAYLOAD))
    product = comparable(event(schema_version=2, payload=V2_PAYLOAD))[1]
    assert product[3]["price_cents"] == 1250


def test_the_newest_version_passes_unchanged():
    v2 = event(schema_version=2, payload=V2_PAYLOAD)
    assert UPCASTERS.upcast(v2) is v2


def test_a_version_newer_than_known_is_unknown_not_malformed_data():
    with pytest.raises(UnknownSchemaVersion, match="schema_version 3"):
        UPCASTERS.upcast(event(schema_version=3))
    with pytest.raises(UnknownSchemaVersion):
        projection.changes(event(schema_version=3))
    assert issubclass(UnknownSchemaVersion, MalformedEvent)  # whoever cannot tell still does not apply it


def test_a_projector_that_knows_only_v1_refuses_v2_and_reads_v1_as_is():
    old = UPCASTERS.knowing_only({events.PRODUCT_UPDATED: 1})
    assert old.newest(events.PRODUCT_UPDATED) == 1
    with pytest.raises(UnknownSchemaVersion):
        old.upcast(event(schema_version=2, payload=V2_PAYLOAD))
    v1 = event()
    assert old.upcast(v1) is v1
    assert UPCASTERS.newest(events.PRODUCT_UPDATED) == 2  # the registry itself is unchanged


def test_upcasters_chain_one_version_at_a_time():
    registry = Upcasters()
    registry.register("product.updated", 1)(lambda p: {**p, "v2": True})
    registry.register("product.updated", 2)(lambda p: {**p, "v3": p["v2"]})
    upcast = registry.upcast(event())
    assert upcast.schema_version == 3 and upcast.payload["v3"] is True


def test_an_old_payload_that_cannot_be_upcast_is_malformed_not_unknown():
    broken = event(payload={"name": "no price"})
    with pytest.raises(MalformedEvent) as raised:
        UPCASTERS.upcast(broken)
    assert not isinstance(raised.value, UnknownSchemaVersion)


def test_a_price_in_another_currency_does_not_fit_the_read_model():
    with pytest.raises(MalformedEvent, match="USD"):
        projection.changes(event(schema_version=2, payload={**V2_PAYLOAD, "price": {"amount": "1", "currency": "USD"}}))


def test_the_write_side_emits_either_version():
    product = {**V1_PAYLOAD, "price": __import__("decimal").Decimal("12.5")}
    assert event_payload(product) == V1_PAYLOAD
    assert event_payload(product, 2) == V2_PAYLOAD


def test_a_projector_reading_a_message_of_an_unknown_version_keeps_the_event_to_hold_it():
    from types import SimpleNamespace

    from cqrs_demo.read.projector import Projector

    settings = Settings(mongo_url="mongodb://127.0.0.1:9/?connect=false")
    old = Projector(settings, upcasters=UPCASTERS.knowing_only({events.PRODUCT_UPDATED: 1}))
    try:
        body = event(schema_version=2, payload=V2_PAYLOAD).to_json()
        delivery = old._read(None, SimpleNamespace(redelivered=False), SimpleNamespace(headers={}, message_id="e-1"), body)
        assert isinstance(delivery.unreadable, UnknownSchemaVersion)
        assert delivery.event.schema_version == 2 and delivery.stream.key == "product:7"
        new = Projector(settings)
        current = new._read(None, SimpleNamespace(redelivered=False), SimpleNamespace(headers={}, message_id="e-1"), body)
        new.client.close()
        assert current.unreadable is None and current.event.payload == V2_PAYLOAD
    finally:
        old.client.close()
