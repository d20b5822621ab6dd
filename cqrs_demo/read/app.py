"""The query service: validated parameters in, read-model documents out. It never writes."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request

from cqrs_demo import config as config_module
from cqrs_demo import web
from cqrs_demo.config import Settings
from cqrs_demo.connections import mongo_client
from cqrs_demo.read import queries
from cqrs_demo.read.openapi import document
from cqrs_demo.read.waiting import VersionWatch
from cqrs_demo.read.params import (
    NoParams,
    OrderListParams,
    ProductListParams,
    ReadYourWrites,
    TopProductsParams,
    parse,
)

api = Blueprint("queries", __name__)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or config_module.from_environment()
    app = Flask(__name__)
    web.install(app)
    client = mongo_client(settings)
    db = client[settings.mongo_database]
    app.extensions["cqrs"] = {"settings": settings, "db": db, "watch": VersionWatch(db)}
    app.register_blueprint(api)
    web.add_health(app, "query", settings, probe=lambda: client.admin.command("ping"))
    app.add_url_rule("/openapi.json", "openapi", lambda: jsonify(document()))
    return app


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
    response.headers["ETag"] = f'"{view["version"]}"'
    response.headers["X-Read-Model-Version"] = str(view["version"])
    return response


@api.get("/api/products")
def list_products():
    params = parse(ProductListParams, request.args)
    items, total = queries.list_products(_db(), params)
    return _page(items, total, params.limit, params.offset)


@api.get("/api/products/<id:product_id>")
def get_product(product_id: int):
    params = parse(ReadYourWrites, request.args)
    return _versioned(queries.get_product(_watch(), product_id, params.min_version, _wait_seconds()))


@api.get("/api/orders")
def list_orders():
    params = parse(OrderListParams, request.args)
    items, total = queries.list_orders(_db(), params)
    return _page(items, total, params.limit, params.offset)


@api.get("/api/orders/<id:order_id>")
def get_order(order_id: int):
    params = parse(ReadYourWrites, request.args)
    return _versioned(queries.get_order(_watch(), order_id, params.min_version, _wait_seconds()))


@api.get("/api/stats/top-products")
def top_products():
    params = parse(TopProductsParams, request.args)
    return jsonify(queries.top_products(_db(), params.limit))


@api.get("/api/projection")
def projection_status():
    parse(NoParams, request.args)
    return jsonify(queries.projection_status(_db()))
