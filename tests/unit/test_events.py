"""Reading events back (`messaging/events.py`): what the read side accepts, and what it calls malformed.

tests/unit/test_commands.py covers the basic shape (JSON object, required fields, known type);
these add the cases the projector depends on: exact messages, booleans that are not integers,
the schema version, and a commit time the projector can compute with.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from cqrs_demo.messaging import events
from cqrs_demo.messaging.events import Event, MalformedEvent
from sample_events import (
    order_cancelled,
    order_placed,
    product_created,
    product_deleted,
    product_updated,
    stock_changed,
)

EVERY_TYPE = [product_created(1), product_updated(1, 2), product_deleted(1, 3), stock_changed(1, 4),
              order_placed(2), order_cancelled(2)]


def as_dict(**changes) -> dict:
    return {**json.loads(product_created(7).to_json()), **changes}


def parsed(data: dict) -> Event:
    return Event.from_json(json.dumps(data).encode())


@pytest.mark.parametrize("event", EVERY_TYPE, ids=lambda e: e.type)
def test_every_event_type_round_trips_through_its_json(event):
    assert Event.from_json(event.to_json()) == event


def test_the_known_types_are_exactly_the_six_the_write_side_emits():
    assert events.KNOWN_TYPES == {e.type for e in EVERY_TYPE}


@pytest.mark.parametrize("field, kind", [("aggregate_id", "int"), ("aggregate_version", "int"), ("position", "int")])
@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_is_not_an_integer(field, kind, value):
    with pytest.raises(MalformedEvent, match=rf"field '{field}' missing or not {kind}"):
        parsed(as_dict(**{field: value}))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"position": "42"}, "field 'position' missing or not int"),
        ({"committed_at": 1714564800}, "field 'committed_at' missing or not str"),
        ({"payload": None}, "field 'payload' missing or not dict"),
        ({"type": "product.renamed"}, "unknown event type 'product.renamed'"),
        ({"aggregate_version": -3}, "aggregate_version must be >= 1"),
        ({"schema_version": "1"}, "schema_version must be a positive integer, got '1'"),
        ({"schema_version": None}, "schema_version must be a positive integer, got None"),
    ],
    ids=str,
)
def test_a_malformed_event_says_what_is_wrong(changes, message):
    with pytest.raises(MalformedEvent) as caught:
        parsed(as_dict(**changes))
    assert message in str(caught.value)


def test_the_schema_version_may_be_left_out_and_means_version_1():
    data = as_dict()
    del data["schema_version"]
    assert parsed(data).schema_version == events.SCHEMA_VERSION == 1


def test_fields_the_contract_does_not_know_are_dropped():
    event = parsed(as_dict(trace_id="abc", published_at="now"))
    assert not hasattr(event, "trace_id") and not hasattr(event, "published_at")
    assert Event.from_json(event.to_json()) == event


@pytest.mark.parametrize("body", [b"[]", b"42", b'"text"', b"{\"a\": 1", b"\xff{}", b"   "])
def test_bodies_that_are_not_one_json_object_are_malformed(body):
    with pytest.raises(MalformedEvent):
        Event.from_json(body)


@pytest.mark.parametrize(
    "committed_at",
    ["yesterday", "", "2024-13-01T00:00:00+00:00", "2024-05-01T12:00:00"],
    ids=["not a date", "empty", "no such month", "no UTC offset"],
)
def test_a_commit_time_the_projector_cannot_compute_with_is_malformed(committed_at):
    # The projector measures its lag from this time; an unreadable or offset-less one would stop
    # it on the first batch instead of dead-lettering the one message.
    with pytest.raises(MalformedEvent, match="committed_at"):
        parsed(as_dict(committed_at=committed_at))


@pytest.mark.parametrize("committed_at", ["2024-05-01T12:00:00+00:00", "2024-05-01T14:00:00.5+02:00",
                                          "2024-05-01T12:00:00Z"])
def test_commit_times_with_an_offset_are_accepted_as_sent(committed_at):
    assert parsed(as_dict(committed_at=committed_at)).committed_at == committed_at


def test_events_are_immutable():
    event = product_created(7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.aggregate_version = 2
