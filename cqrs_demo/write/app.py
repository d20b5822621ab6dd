"""The command service: HTTP in, one command transaction, the result out. Nothing else."""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Flask, current_app, g, jsonify, request

from cqrs_demo import config as config_module
from cqrs_demo import web
from cqrs_demo.config import Settings
from cqrs_demo.connections import write_engine
from cqrs_demo.errors import InvalidParameter
from cqrs_demo.messaging.naive import NaivePublisher
from cqrs_demo.write import orders, products
from cqrs_demo.write.commands import PlaceOrder, ProductFields, ProductPatch
from cqrs_demo.write.openapi import document
from cqrs_demo.write.schema import create_schema
from cqrs_demo.write.transaction import command_transaction

api = Blueprint("commands", __name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or config_module.from_environment()
    app = Flask(__name__)
    web.install(app)
    engine = write_engine(settings)
    create_schema(settings, engine)
    publisher = NaivePublisher(settings) if settings.naive else None
    app.extensions["cqrs"] = {"settings": settings, "engine": engine, "after_commit": publisher and publisher.publish}
    app.register_blueprint(api)
    web.add_health(app, "command", settings, probe=lambda: _probe(engine))
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document()))

    @app.before_request
    def _stamp_arrival():
        g.received_at = datetime.now(timezone.utc)

    return app


def _probe(engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


def _transaction():
    ext = current_app.extensions["cqrs"]
    return command_transaction(ext["engine"], g.received_at, ext["after_commit"])


def expected_version() -> int | None:
    """The version named by If-Match (`3`, `"3"` or `W/"3"`); None when absent or `*`."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise InvalidParameter(f"If-Match must be a product version, got {raw!r}", parameter="If-Match")
    return int(value)


def _product_response(product: dict, status: int = 200):
    response = jsonify(product)
    response.status_code = status
    response.headers["ETag"] = f'"{product["version"]}"'
    return response


@api.post("/api/products")
def create_product():
    fields = web.validated(ProductFields, web.json_body())
    with _transaction() as tx:
        product = products.create(tx, fields)
    response = _product_response(product, 201)
    response.headers["Location"] = f"/api/products/{product['id']}"
    return response


@api.put("/api/products/<id:product_id>")
def replace_product(product_id: int):
    fields = web.validated(ProductFields, web.json_body())
    with _transaction() as tx:
        product = products.replace(tx, product_id, fields, expected_version())
    return _product_response(product)


@api.patch("/api/products/<id:product_id>")
def patch_product(product_id: int):
    patch = web.validated(ProductPatch, web.json_body())
    with _transaction() as tx:
        product = products.patch(tx, product_id, patch, expected_version())
    return _product_response(product)


@api.delete("/api/products/<id:product_id>")
def delete_product(product_id: int):
    with _transaction() as tx:
        result = products.delete(tx, product_id, expected_version())
    return jsonify(result)


@api.post("/api/orders")
def place_order():
    command = web.validated(PlaceOrder, web.json_body())
    with _transaction() as tx:
        order = orders.place(tx, command)
    response = jsonify(order)
    response.status_code = 201
    response.headers["Location"] = f"/api/orders/{order['id']}"
    return response


@api.post("/api/orders/<id:order_id>/cancel")
def cancel_order(order_id: int):
    with _transaction() as tx:
        order = orders.cancel(tx, order_id)
    return jsonify(order)
