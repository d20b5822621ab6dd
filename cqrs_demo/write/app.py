"""The command service: HTTP in, one command transaction, the result out. Nothing else.

Each route declares what it takes and answers (`openapi.operation`); `/openapi.json` is made
from those declarations.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Flask, current_app, g, jsonify, request

from cqrs_demo import config as config_module
from cqrs_demo import etags, openapi, web
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, write_engine
from cqrs_demo.errors import (
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
from cqrs_demo.write import orders, products, results
from cqrs_demo.startup import POSTGRESQL_DOWN, RABBITMQ_DOWN, wait_for
from cqrs_demo.write.commands import PlaceOrder, ProductFields, ProductPatch
from cqrs_demo.write.schema import create_schema
from cqrs_demo.write.transaction import command_transaction

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
    engine = write_engine(settings)
    wait_for("PostgreSQL", lambda: create_schema(settings, engine), POSTGRESQL_DOWN)
    publisher = None
    if settings.naive:  # the service publishes itself: it needs the broker from the start
        wait_for("RabbitMQ", lambda: amqp_connection(settings).close(), RABBITMQ_DOWN)
        publisher = NaivePublisher(settings)
    app = routes(settings, probe=lambda: _probe(engine))
    app.extensions["cqrs"] = {"settings": settings, "engine": engine, "publisher": publisher,
                              "after_commit": publisher and publisher.publish}
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
    return command_transaction(ext["engine"], g.received_at, ext["after_commit"])


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
    replies=[Reply(201, "created", results.Product, results.CreatedProductHeaders, _NEXT_FOR_PRODUCT)],
    errors=[*web.JSON_BODY_ERRORS, DuplicateSku],
)
def create_product():
    fields = web.validated(ProductFields, web.json_body())
    with _transaction() as tx:
        product = products.create(tx, fields)
    response = _product_response(product, 201)
    response.headers["Location"] = f"/api/products/{product['id']}"
    return response


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
    replies=[
        Reply(
            201, "placed", results.Order, results.CreatedOrderHeaders,
            {"cancel_order": Link("cancel_order", {"path.order_id": "$response.body#/id"})},
        )
    ],
    errors=[*web.JSON_BODY_ERRORS, NotFound, InsufficientStock, OrderTotalTooLarge],
)
def place_order():
    command = web.validated(PlaceOrder, web.json_body())
    with _transaction() as tx:
        order = orders.place(tx, command)
    response = jsonify(order)
    response.status_code = 201
    response.headers["Location"] = f"/api/orders/{order['id']}"
    return response


@api.post("/api/orders/<id:order_id>/cancel")
@operation(
    summary="Cancel an order and restock it; cancelling a cancelled order changes nothing",
    replies=[Reply(200, "cancelled", results.Order)],
    errors=[NotFound],
)
def cancel_order(order_id: int):
    with _transaction() as tx:
        order = orders.cancel(tx, order_id)
    return jsonify(order)
