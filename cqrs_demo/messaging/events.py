"""The event contract between the write side and the read side.

An event is plain, immutable, versioned data. The write side stores it in the outbox in the
same transaction as the state change it describes; the relay publishes it unchanged; the read
side parses it back with `Event.from_json`. Neither side imports the other's models: this
module is all they share.

Money travels as a decimal string ("120.00"), never as a binary float.

Each event names the `schema_version` of its payload. Version 1 is the original contract. Version
2 of `product.created` and `product.updated` carries the price as an amount and a currency,
`{"amount": "120.00", "currency": "EUR"}`, where version 1 had the bare amount in the shop's one
currency. The write side emits version 2 when told to (`CQRS_PRODUCT_EVENT_VERSION`); the read
side turns older versions into the newest it knows (`cqrs_demo.read.upcasting`) and holds back
any version newer than that until a projector that knows it arrives.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1  # the version an event without the field is read as
CURRENCY = "EUR"  # the shop's one currency, implied by version 1's bare amounts

PRODUCT_CREATED = "product.created"
PRODUCT_UPDATED = "product.updated"
PRODUCT_DELETED = "product.deleted"
PRODUCT_STOCK_CHANGED = "product.stock_changed"
ORDER_PLACED = "order.placed"
ORDER_CANCELLED = "order.cancelled"

KNOWN_TYPES = frozenset(
    {
        PRODUCT_CREATED,
        PRODUCT_UPDATED,
        PRODUCT_DELETED,
        PRODUCT_STOCK_CHANGED,
        ORDER_PLACED,
        ORDER_CANCELLED,
    }
)


class MalformedEvent(ValueError):
    """A message that cannot be read as an event of this contract."""


@dataclass(frozen=True)
class Event:
    event_id: str
    type: str
    aggregate_type: str
    aggregate_id: int
    aggregate_version: int
    position: int
    committed_at: str
    payload: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def routing_key(self) -> str:
        return self.type

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes) -> "Event":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedEvent("body is not a JSON object")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Event":
        checks = {
            "event_id": str,
            "type": str,
            "aggregate_type": str,
            "aggregate_id": int,
            "aggregate_version": int,
            "position": int,
            "committed_at": str,
            "payload": dict,
        }
        for name, kind in checks.items():
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise MalformedEvent(f"field {name!r} missing or not {kind.__name__}")
        schema_version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(schema_version, int) or isinstance(schema_version, bool) or schema_version < 1:
            # Whether this reader understands the version is the reader's question, not the parser's.
            raise MalformedEvent(f"schema_version must be a positive integer, got {schema_version!r}")
        if data["type"] not in KNOWN_TYPES:
            raise MalformedEvent(f"unknown event type {data['type']!r}")
        if data["aggregate_version"] < 1:
            raise MalformedEvent("aggregate_version must be >= 1")
        _check_commit_time(data["committed_at"])
        return cls(**{name: data[name] for name in checks}, schema_version=schema_version)


def _check_commit_time(value: str) -> None:
    """The read side computes with this time (its lag), so it must be a date-time with an offset;
    refusing it here dead-letters the one message instead of failing the batch it arrived in."""
    try:
        committed_at = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedEvent(f"field 'committed_at' is not an ISO 8601 date-time: {value[:40]!r}") from None
    if committed_at.utcoffset() is None:
        raise MalformedEvent(f"field 'committed_at' has no UTC offset: {value[:40]!r}")


def price_v2(amount: str) -> dict[str, str]:
    """The price as version 2 of the product events carries it."""
    return {"amount": amount, "currency": CURRENCY}
