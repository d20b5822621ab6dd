"""The query service: validated parameters in, read-model documents out. It never writes.

Each route declares what it takes and answers (`openapi.operation`); `/openapi.json` is made
from those declarations.
"""

from __future__ import annotations

import functools

from flask import Blueprint, Flask, current_app, jsonify, request

from cqrs_demo import config as config_module
from cqrs_demo import openapi, web
from cqrs_demo.config import Settings
from cqrs_demo.connections import mongo_client
from cqrs_demo.errors import InvalidParameter, NotFound, ReadModelBehind
from cqrs_demo.etags import etag
from cqrs_demo.openapi import Link, Reply, operation
from cqrs_demo.read import generations, notices, queries, views
from cqrs_demo.read.params import (
    NoParams,
    OrderListParams,
    ProductListParams,
    ReadYourWrites,
    TopProductsParams,
    parse,
)
from cqrs_demo.read.waiting import VersionWatch
from cqrs_demo.startup import MONGODB_DOWN, wait_for

_ABOUT = (
    "CQRS Workbench query service",
    "Serves products, orders and sales from the MongoDB read model that the projector keeps.",
)

api = Blueprint("queries", __name__)


def _first(operation_id: str, variable: str) -> dict[str, Link]:
    """From a page of results to the first one's own document."""
    return {operation_id: Link(operation_id, {f"path.{variable}": "$response.body#/0/id"})}


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or config_module.from_environment()
    client = mongo_client(settings)
    wait_for("MongoDB", lambda: client.admin.command("ping"), MONGODB_DOWN)
    # Reads follow a rebuild's switch within REFRESH_SECONDS, well inside the time the old
    # generation is kept after it; reading the pointer for every query would double the reads
    # the read model serves (a read-your-writes wait looks every few milliseconds while the
    # projector's notices do not flow).
    db = generations.Following(client[settings.mongo_database], refresh_seconds=generations.REFRESH_SECONDS)
    app = routes(settings, probe=lambda: client.admin.command("ping"))
    # Waiting requests learn from the projector's notices when to read (`read.notices`).
    watch = VersionWatch(db, feed=functools.partial(notices.follow, settings))
    app.extensions["cqrs"] = {"settings": settings, "db": db, "watch": watch}
    web.add_openapi(app, *_ABOUT)
    return app


def routes(settings: Settings | None = None, probe=None) -> Flask:
    """The service's routes; without settings, what its document and its tests inspect."""
    app = Flask(__name__)
    web.install(app)
    app.register_blueprint(api)
    web.add_health(app, "query", settings, probe)
    return app


def document() -> dict:
    """The service's OpenAPI document, as `/openapi.json` serves it."""
    return openapi.document(routes(), *_ABOUT)


def _db():
    return current_app.extensions["cqrs"]["db"]


def _watch() -> VersionWatch:
    return current_app.extensions["cqrs"]["watch"]


def _wait_seconds() -> float:
    return current_app.extensions["cqrs"]["settings"].read_wait_seconds


def _page(items: list, total: int, limit: int, offset: int):
    response = jsonify(items)
    response.headers["X-Total-Count"] = str(total)
    response.headers["X-Limit"] = str(limit)
    response.headers["X-Offset"] = str(offset)
    return response


def _versioned(view: dict):
    response = jsonify(view)
    response.headers["ETag"] = etag(view["version"])
    response.headers["X-Read-Model-Version"] = str(view["version"])
    return response


@api.get("/api/products")
@operation(
    summary="List products",
    query=ProductListParams,
    replies=[Reply(200, "one page of products", list[views.Product], views.PageHeaders, _first("get_product", "product_id"))],
    errors=[InvalidParameter],
)
def list_products():
    params = parse(ProductListParams, request.args)
    items, total = queries.list_products(_db(), params)
    return _page(items, total, params.limit, params.offset)


@api.get("/api/products/<id:product_id>")
@operation(
    summary="One product; with min_version, once the read model has that version",
    query=ReadYourWrites,
    replies=[Reply(200, "the read model's product", views.Product, views.DocumentHeaders)],
    errors=[InvalidParameter, NotFound, ReadModelBehind],
)
def get_product(product_id: int):
    params = parse(ReadYourWrites, request.args)
    return _versioned(queries.get_product(_watch(), product_id, params.min_version, _wait_seconds()))


@api.get("/api/orders")
@operation(
    summary="List orders",
    query=OrderListParams,
    replies=[Reply(200, "one page of orders", list[views.Order], views.PageHeaders, _first("get_order", "order_id"))],
    errors=[InvalidParameter],
)
def list_orders():
    params = parse(OrderListParams, request.args)
    items, total = queries.list_orders(_db(), params)
    return _page(items, total, params.limit, params.offset)


@api.get("/api/orders/<id:order_id>")
@operation(
    summary="One order, lines embedded; with min_version, once the read model has that version",
    query=ReadYourWrites,
    replies=[Reply(200, "the read model's order", views.Order, views.DocumentHeaders)],
    errors=[InvalidParameter, NotFound, ReadModelBehind],
)
def get_order(order_id: int):
    params = parse(ReadYourWrites, request.args)
    return _versioned(queries.get_order(_watch(), order_id, params.min_version, _wait_seconds()))


@api.get("/api/stats/top-products")
@operation(
    summary="Best-selling products by units sold",
    query=TopProductsParams,
    replies=[Reply(200, "best sellers first", list[views.TopProduct])],
    errors=[InvalidParameter],
)
def top_products():
    params = parse(TopProductsParams, request.args)
    return jsonify(queries.top_products(_db(), params.limit))


@api.get("/api/projection")
@operation(
    summary="The projector's status record, and the read model's generation and rebuilds",
    query=NoParams,
    replies=[Reply(200, "its counters and lag, the live generation, the rebuild under way or the last one", views.ReadModelStatus)],
    errors=[InvalidParameter],
)
def projection_status():
    parse(NoParams, request.args)
    return jsonify(queries.read_model_status(_db()))
