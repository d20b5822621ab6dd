"""The read-side payoff's baseline: the same two reads answered from PostgreSQL with joins.

Benchmark-only. It runs on the same HTTP stack as the query service (Flask on waitress, its own
process), so the comparison isolates where the answer comes from: one MongoDB document per
order, and a maintained sales view, against a join and an aggregation on the write model.
"""

from __future__ import annotations

import sys

import sqlalchemy as sa
from flask import Flask, jsonify

from cqrs_demo import config, web
from cqrs_demo.connections import write_engine
from cqrs_demo.errors import NotFound

ORDER = sa.text(
    """SELECT o.id, o.customer, o.status, o.total, o.version, o.created_at,
              l.line_no, l.product_id, l.sku, l.name, l.quantity, l.unit_price, l.line_total
       FROM orders o JOIN order_lines l ON l.order_id = o.id
       WHERE o.id = :id ORDER BY l.line_no"""
)
TOP_PRODUCTS = sa.text(
    """SELECT l.product_id, max(l.sku) AS sku, max(l.name) AS name,
              sum(l.quantity) AS units_sold, sum(l.line_total) AS revenue
       FROM order_lines l JOIN orders o ON o.id = l.order_id
       WHERE o.status = 'placed'
       GROUP BY l.product_id ORDER BY units_sold DESC, l.product_id LIMIT :limit"""
)


def create_app(settings=None) -> Flask:
    settings = settings or config.from_environment()
    app = Flask(__name__)
    web.install(app)
    # Plain SQL names the tables without a schema: point the session at the namespace's schema.
    engine = write_engine(settings, connect_args={"options": f"-csearch_path={settings.schema}"})

    @app.get("/baseline/orders/<int:order_id>")
    def order(order_id: int):
        with engine.connect() as conn:
            rows = conn.execute(ORDER, {"id": order_id}).all()
        if not rows:
            raise NotFound(f"no order with id {order_id}")
        head = rows[0]
        return jsonify({
            "id": head.id, "customer": head.customer, "status": head.status, "total": head.total,
            "version": head.version, "placed_at": head.created_at,
            "lines": [{"line_no": r.line_no, "product_id": r.product_id, "sku": r.sku, "name": r.name,
                       "quantity": r.quantity, "unit_price": r.unit_price, "line_total": r.line_total} for r in rows],
        })

    @app.get("/baseline/stats/top-products")
    def top_products():
        with engine.connect() as conn:
            rows = conn.execute(TOP_PRODUCTS, {"limit": 10}).all()
        return jsonify([dict(row._mapping) for row in rows])

    web.add_health(app, "baseline", settings, probe=lambda: engine.connect().close())
    return app


def main() -> None:
    import waitress

    settings = config.from_environment()
    port = int(sys.argv[1])
    waitress.serve(create_app(settings), host="127.0.0.1", port=port, threads=16, ident="cqrs-baseline")


if __name__ == "__main__":
    main()
