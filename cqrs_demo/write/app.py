"""The command service: HTTP in, one command transaction, the result out. Nothing else.

Each route declares what it takes and answers (`openapi.operation`); `/openapi.json` is made
from those declarations. POSTs (create a product, place or cancel an order) accept an
`Idempotency-Key`: see `idempotency`.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Callable

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from cqrs_demo import config as config_module
from cqrs_demo import etags, openapi, web
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, write_engine
from cqrs_demo.errors import (
    ApiError,
    DuplicateSku,
    InsufficientStock,
    InvalidParameter,
    NotFound,
    OrderTotalTooLarge,
    PreconditionFailed,
    ProductInOpenOrders,
)
from cqrs_demo.messaging.naive import NaivePublisher
from cqrs_demo.openapi import Link, Reply, operation
from cqrs_demo.startup import POSTGRESQL_DOWN, RABBITMQ_DOWN, wait_for
from cqrs_demo.write import idempotency, orders, products, results
from cqrs_demo.write.commands import PlaceOrder, ProductFields, ProductPatch
from cqrs_demo.write.schema import create_schema, idempotency_lock_class
from cqrs_demo.write.transaction import CommandTransaction, command_transaction

_ABOUT = (
    "CQRS Workbench command service",
    "Writes products and orders to PostgreSQL and records every change as an event in the outbox.",
)

api = Blueprint("commands", __name__)

# What a client can do next with a product it has just written: its id, and its ETag as If-Match.
_NEXT_FOR_PRODUCT = {
    name: Link(name, {"path.product_id": "$response.body#/id", "header.If-Match": "$response.header.ETag"})
    for name in ("replace_product", "patch_product", "delete_product")
}
_IF_MATCH_ERRORS = (InvalidParameter, PreconditionFailed)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or config_module.from_environment()
    engine = write_engine(settings, pool_size=web.REQUEST_THREADS)
    wait_for("PostgreSQL", lambda: create_schema(settings, engine), POSTGRESQL_DOWN)
    publisher = None
    if settings.naive:  # the service publishes itself: it needs the broker from the start
        wait_for("RabbitMQ", lambda: amqp_connection(settings).close(), RABBITMQ_DOWN)
        publisher = NaivePublisher(settings)
    app = routes(settings, probe=lambda: _probe(engine))
    app.extensions["cqrs"] = {"settings": settings, "engine": engine, "publisher": publisher,
                              "after_commit": publisher and publisher.publish, "next_key_purge": 0.0}
    web.add_openapi(app, *_ABOUT)

    @app.before_request
    def _stamp_arrival():
        g.received_at = datetime.now(timezone.utc)

    return app


def routes(settings: Settings | None = None, probe=None) -> Flask:
    """The service's routes; without settings, what its document and its tests inspect."""
    app = Flask(__name__)
    web.install(app)
    app.register_blueprint(api)
    web.add_health(app, "command", settings, probe)
    return app


def document() -> dict:
    """The service's OpenAPI document, as `/openapi.json` serves it."""
    return openapi.document(routes(), *_ABOUT)


def _probe(engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def _transaction():
    ext = current_app.extensions["cqrs"]
    return command_transaction(ext["engine"], g.received_at, ext["after_commit"],
                               product_event_version=ext["settings"].product_event_version)


def _run(command: Callable[[CommandTransaction], Response], body=None) -> Response:
    """Run `command` in one transaction; with an Idempotency-Key, at most once per key (see `idempotency`)."""
    key = idempotency.parse_key(request.headers.getlist(idempotency.HEADER))
    if key is None:
        with _transaction() as tx:
            return command(tx)
    ext = current_app.extensions["cqrs"]
    settings = ext["settings"]
    keyed = idempotency.KeyedRequest(key, idempotency.fingerprint(request.method, request.path, body))
    _purge_keys_when_due(ext)
    with _transaction() as tx:
        stored = idempotency.claim(tx.conn, keyed, idempotency_lock_class(settings))
        if stored is not None:
            response = Response(stored.body, stored.status, stored.headers)
            response.headers[idempotency.REPLAYED] = "true"
            return response
        attempt = tx.conn.begin_nested()
        try:
            response = command(tx)
            attempt.commit()
        except ApiError as exc:  # refused by the domain: its effects undone, the refusal remembered
            attempt.rollback()
            tx.events.clear()
            response = web.error_response(exc)
        answer = idempotency.Answer.of(response.status_code, response.get_data(), response.headers)
        idempotency.remember(tx.conn, keyed, answer, timedelta(hours=settings.idempotency_key_hours))
    return response


def _purge_keys_when_due(ext: dict) -> None:
    """Expired keys are deleted by the service itself, at most every tenth of their lifetime."""
    if time.monotonic() < ext["next_key_purge"]:
        return
    idempotency.purge_expired(ext["engine"])
    ext["next_key_purge"] = time.monotonic() + min(600.0, ext["settings"].idempotency_key_hours * 360)


def _product_response(product: dict, status: int = 200):
    response = jsonify(product)
    response.status_code = status
    response.headers["ETag"] = etags.etag(product["version"])
    return response


def _precondition():
    return etags.if_match(request.headers.get("If-Match"))


@api.post("/api/products")
@operation(
    summary="Create a product",
    body=ProductFields,
    headers=idempotency.IdempotencyKeyHeader,
    replies=[Reply(201, "created", results.Product, results.CreatedProductHeaders, _NEXT_FOR_PRODUCT)],
    errors=[*web.JSON_BODY_ERRORS, DuplicateSku, *idempotency.ERRORS],
)
def create_product():
    body = web.json_body()
    fields = web.validated(ProductFields, body)

    def create(tx: CommandTransaction) -> Response:
        product = products.create(tx, fields)
        response = _product_response(product, 201)
        response.headers["Location"] = f"/api/products/{product['id']}"
        return response

    return _run(create, body)


@api.put("/api/products/<id:product_id>")
@operation(
    summary="Replace a product",
    body=ProductFields,
    headers=etags.IfMatch,
    replies=[Reply(200, "replaced", results.Product, results.ProductHeaders, _NEXT_FOR_PRODUCT)],
    errors=[*web.JSON_BODY_ERRORS, *_IF_MATCH_ERRORS, NotFound, DuplicateSku],
)
def replace_product(product_id: int):
    fields = web.validated(ProductFields, web.json_body())
    with _transaction() as tx:
        product = products.replace(tx, product_id, fields, _precondition())
    return _product_response(product)


@api.patch("/api/products/<id:product_id>")
@operation(
    summary="Change some fields of a product",
    body=ProductPatch,
    headers=etags.IfMatch,
    replies=[Reply(200, "changed", results.Product, results.ProductHeaders, _NEXT_FOR_PRODUCT)],
    errors=[*web.JSON_BODY_ERRORS, *_IF_MATCH_ERRORS, NotFound, DuplicateSku],
)
def patch_product(product_id: int):
    patch = web.validated(ProductPatch, web.json_body())
    with _transaction() as tx:
        product = products.patch(tx, product_id, patch, _precondition())
    return _product_response(product)


@api.delete("/api/products/<id:product_id>")
@operation(
    summary="Delete a product (refused while placed orders name it)",
    headers=etags.IfMatch,
    replies=[Reply(200, "deleted", results.DeletedProduct)],
    errors=[*_IF_MATCH_ERRORS, NotFound, ProductInOpenOrders],
)
def delete_product(product_id: int):
    precondition = _precondition()
    with _transaction() as tx:
        result = products.delete(tx, product_id, precondition)
    return jsonify(result)


@api.post("/api/orders")
@operation(
    summary="Place an order: all lines or none, stock taken in the same transaction",
    body=PlaceOrder,
    headers=idempotency.IdempotencyKeyHeader,
    replies=[
        Reply(
            201, "placed", results.Order, results.CreatedOrderHeaders,
            {"cancel_order": Link("cancel_order", {"path.order_id": "$response.body#/id"})},
        )
    ],
    errors=[*web.JSON_BODY_ERRORS, NotFound, InsufficientStock, OrderTotalTooLarge, *idempotency.ERRORS],
)
def place_order():
    body = web.json_body()
    command = web.validated(PlaceOrder, body)

    def place(tx: CommandTransaction) -> Response:
        order = orders.place(tx, command)
        response = jsonify(order)
        response.status_code = 201
        response.headers["Location"] = f"/api/orders/{order['id']}"
        return response

    return _run(place, body)


@api.post("/api/orders/<id:order_id>/cancel")
@operation(
    summary="Cancel an order and restock it; cancelling a cancelled order changes nothing",
    headers=idempotency.IdempotencyKeyHeader,
    replies=[Reply(200, "cancelled", results.Order, results.Replayed)],
    errors=[NotFound, *idempotency.ERRORS],
)
def cancel_order(order_id: int):
    return _run(lambda tx: jsonify(orders.cancel(tx, order_id)))
