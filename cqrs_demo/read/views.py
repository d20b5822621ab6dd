"""What the query service answers: read documents as clients see them, and the headers with them.

Each answer is a pydantic model (the document is generated from them, and the fuzzer in
tests/property checks every answer against it) and a function that builds it from a stored
document. Answers are plain dicts, not validated again on their way out.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cqrs_demo.etags import ETAG_PATTERN
from cqrs_demo.messaging import product
from cqrs_demo.messaging.product import CENT, JsonNumber, Money, ProductFields, money
from cqrs_demo.web import Id

Version = Annotated[int, Field(ge=1, description="the version of the last event applied")]
Count = Annotated[int, Field(ge=0)]
# Sales add up over many orders, past what one order can carry.
Revenue = Annotated[Decimal, Field(ge=0, multiple_of=CENT), JsonNumber()]


def instant(value: Any) -> str | None:
    """A stored timestamp as ISO 8601 in UTC, whether the store hands back a datetime or text.

    MongoDB returns datetimes; some wire-compatible servers return the text they stored, without
    an offset. Both mean UTC here, and clients always get the same format.
    """
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


class _Projected(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Version
    committed_at: datetime | None = Field(description="when the write side committed the last event applied")
    projected_at: datetime | None = Field(description="when the projector applied it")


def _projection_meta(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": doc["version"],
        "committed_at": instant(doc.get("committed_at")),
        "projected_at": instant(doc.get("projected_at")),
    }


class Product(ProductFields, _Projected):
    """A product in the read model."""

    model_config = ConfigDict(json_schema_extra=None)  # the body's example is not an answer

    # Cancelling an order restocks it, which can take stock past what a client may set.
    quantity: Count
    id: Id


def product_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {"id": doc["_id"], **product.served(doc), **_projection_meta(doc)}


class OrderLine(BaseModel):
    """A line as ordered: the product's sku, name and price as they were then."""

    model_config = ConfigDict(extra="forbid")

    line_no: Annotated[int, Field(ge=1)]
    product_id: Id
    sku: str
    name: str
    quantity: Annotated[int, Field(ge=1)]
    unit_price: Money
    line_total: Money


class Order(_Projected):
    """An order in the read model, its lines embedded."""

    id: Id
    customer: str
    status: Literal["placed", "cancelled"]
    total: Money
    lines: list[OrderLine]
    placed_at: datetime | None
    cancelled_at: datetime | None


def order_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "customer": doc["customer"],
        "status": doc["status"],
        "total": money(doc["total_cents"]),
        "lines": [
            {
                "line_no": line["line_no"],
                "product_id": line["product_id"],
                "sku": line["sku"],
                "name": line["name"],
                "quantity": line["quantity"],
                "unit_price": money(line["unit_price_cents"]),
                "line_total": money(line["line_total_cents"]),
            }
            for line in doc["lines"]
        ],
        "placed_at": instant(doc.get("placed_at")),
        "cancelled_at": instant(doc.get("cancelled_at")),
        **_projection_meta(doc),
    }


class TopProduct(BaseModel):
    """A product's sales: units sold and revenue over placed (not cancelled) orders."""

    model_config = ConfigDict(extra="forbid")

    product_id: Id
    sku: str | None
    name: str | None
    units_sold: Annotated[int, Field(ge=1)]
    revenue: Revenue
    deleted: bool


def top_product_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "product_id": doc["_id"],
        "sku": doc.get("sku"),
        "name": doc.get("name"),
        "units_sold": doc["units_sold"],
        "revenue": money(doc["revenue_cents"]),
        "deleted": bool(doc.get("deleted", False)),
    }


class PartitionStatus(BaseModel):
    """One projector queue (`CQRS_PARTITIONS`; with 1, the single queue is partition 0)."""

    model_config = ConfigDict(extra="forbid")

    partition: Count
    consumer: str | None = Field(description="the projector that last applied from it (host:pid:id)")
    consumer_alive: bool = Field(description="that projector is still running (it announced itself lately)")
    depth: Count | None = Field(description="events waiting in its queue, as last measured")
    consumers: Count | None = Field(description="projectors subscribed: one active, the others standing by")
    watermark: Count = Field(description="outbox position of the newest event applied from it")
    lag_ms: float | None = Field(description="commit-to-apply time of its last batch, ms")
    applied: Count
    gaps: Count = Field(description="tries of an event whose predecessor was not applied yet (it is tried again)")


class ProjectionStatus(BaseModel):
    """The projector's status record: what it applied, skipped, and how far behind the read side is.

    Alert on `watermark` (with the outbox's latest position), `oldest_unpublished_age_s` and
    `queue_depth`; `max_applied_position` is a maximum, not a promise about the events below it.
    """

    model_config = ConfigDict(extra="forbid")

    applied: Count
    duplicates: Count
    gaps: Count
    reapplied: Count
    overwrote_newer: Count
    dead_lettered: Count
    parked: Count
    watermark: Count = Field(description="every outbox event at or below this position is applied")
    max_applied_position: Count = Field(
        description="the highest outbox position applied: a maximum; events below it may still be missing")
    queue_depth: Count | None = Field(description="events waiting in the projector queue, as last measured")
    oldest_unpublished_age_s: float = Field(
        ge=0, description="seconds the oldest event not yet published has waited, from the relay's last report")
    relay_checked_at: datetime | None = Field(description="when the relay last looked at the outbox")
    last_lag_ms: float | None = Field(description="commit-to-apply time of the last batch, ms")
    updated_at: datetime | None
    partitions: list[PartitionStatus] = Field(description="each projector queue: consumer, depth, watermark, lag")


_COUNTERS = ["applied", "duplicates", "gaps", "reapplied", "overwrote_newer", "dead_lettered", "parked"]


def projection_status_view(doc: dict[str, Any], mark: dict[str, Any] | None = None,
                           relay: dict[str, Any] | None = None,
                           partitions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The status record, the watermark record, the relay's report and each partition's status,
    as `/api/projection` serves them."""
    mark, relay = mark or {}, relay or {}
    oldest = relay.get("oldest_unpublished_at")
    return {
        **{name: doc.get(name, 0) for name in _COUNTERS},
        "watermark": mark.get("position", 0),
        "max_applied_position": doc.get("max_applied_position", 0),
        "queue_depth": doc.get("queue_depth"),
        # Computed now, not stored: it keeps growing while a stuck relay reports nothing.
        "oldest_unpublished_age_s": _age_seconds(oldest) if oldest is not None else 0.0,
        "relay_checked_at": instant(relay.get("checked_at")),
        "last_lag_ms": doc.get("last_lag_ms"),
        "updated_at": instant(doc.get("updated_at")),
        "partitions": partitions or [],
    }


def _age_seconds(when: Any) -> float:
    if isinstance(when, str):  # the MongoDB stand-in hands back datetimes set by an update as text
        when = datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return round(max(0.0, (datetime.now(timezone.utc) - when).total_seconds()), 3)


class DocumentHeaders(BaseModel):
    etag: str = Field(alias="ETag", pattern=ETAG_PATTERN, description="the document's version, quoted")
    read_model_version: int = Field(alias="X-Read-Model-Version", ge=1, description="the document's version")


class PageHeaders(BaseModel):
    total: int = Field(alias="X-Total-Count", ge=0, description="matches before paging")
    limit: int = Field(alias="X-Limit", ge=1, description="the page size used")
    offset: int = Field(alias="X-Offset", ge=0, description="the offset used")


class Rebuild(BaseModel):
    """A rebuild of the read model: the generation it builds, and how far it got."""

    model_config = ConfigDict(extra="forbid")

    generation: Annotated[int, Field(ge=1)]
    state: Literal["building", "switched", "failed"]
    started_at: datetime | None
    finished_at: datetime | None
    replayed: Count = Field(description="events applied to the new generation so far")
    total: Count = Field(description="events in the log when it started")
    failed_position: Count | None = Field(description="the position of the event it could not apply")
    error: str | None


def rebuild_view(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    if not doc:
        return None
    return {
        "generation": doc["generation"],
        "state": doc["state"],
        "started_at": instant(doc.get("started_at")),
        "finished_at": instant(doc.get("finished_at")),
        "replayed": doc.get("replayed", 0),
        "total": doc.get("total", 0),
        "failed_position": doc.get("failed_position"),
        "error": doc.get("error"),
    }


class ReadModelStatus(ProjectionStatus):
    """`/api/projection`: the projector's status record, and the read model's generation (`read.generations`)."""

    generation: Count = Field(description="the read model's live generation: how many rebuilds it has switched to")
    rebuild: Rebuild | None = Field(description="the rebuild under way, if one is")
    last_rebuild: Rebuild | None = Field(description="the last rebuild that ended, switched or failed")


def read_model_status_view(status: dict[str, Any], pointer: dict[str, Any]) -> dict[str, Any]:
    """The projector's status (`projection_status_view`) with the generation pointer's news."""
    return {
        **status,
        "generation": pointer.get("live", 0),
        "rebuild": rebuild_view(pointer.get("rebuild")),
        "last_rebuild": rebuild_view(pointer.get("last_rebuild")),
    }
