"""Order commands against the real PostgreSQL: stock never goes negative, orders are all or
nothing, cancelling restocks exactly once, money is exact, and every change has its events."""

from __future__ import annotations

import re
import threading
from decimal import Decimal

import pytest
import simplejson
import sqlalchemy as sa

from cqrs_demo.write.schema import order_lines, orders, outbox, products

_sku_counter = iter(range(1, 10**9))


def new_sku(prefix: str = "SKU") -> str:
    return f"{prefix}-{next(_sku_counter):05d}"


def create_product(client, *, price="10.00", quantity=10, name=None, sku=None) -> dict:
    sku = sku or new_sku()
    body = {"name": name or f"Product {sku}", "description": "test", "price": Decimal(price), "quantity": quantity, "sku": sku}
    response = client.post("/api/products", data=_json(body), content_type="application/json")
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _json(body) -> str:
    return simplejson.dumps(body, use_decimal=True)


def place(client, lines, customer="alice"):
    return client.post("/api/orders", data=_json({"customer": customer, "lines": lines}), content_type="application/json")


def cancel(client, order_id):
    return client.post(f"/api/orders/{order_id}/cancel")


def stock(engine, product_id) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(products.c.quantity).where(products.c.id == product_id))


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table).where(*where))


def outbox_rows(engine, *where):
    with engine.connect() as conn:
        return conn.execute(sa.select(outbox).where(*where).order_by(outbox.c.position)).all()


# --- the last-unit race -------------------------------------------------------------------------


def _race(settings, sku: str, threads: int = 20) -> list:
    """`threads` clients each order one unit of `sku`, released at the same instant."""
    from cqrs_demo.write.app import create_app

    app = create_app(settings)
    clients = [app.test_client() for _ in range(threads)]
    barrier = threading.Barrier(threads)
    results: list = [None] * threads

    def order(index: int) -> None:
        barrier.wait()
        response = place(clients[index], [{"sku": sku, "quantity": 1}], customer=f"racer-{index}")
        results[index] = (response.status_code, response.get_json())

    workers = [threading.Thread(target=order, args=(i,)) for i in range(threads)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert not any(worker.is_alive() for worker in workers), "a racing order hung"
    finally:
        app.extensions["cqrs"]["engine"].dispose()
    return results


@pytest.mark.parametrize("quantity", [1, 5])
def test_concurrent_orders_never_oversell(command_client, write_engine, settings, quantity):
    scarce = create_product(command_client, quantity=quantity, price="2.50")
    bystander = create_product(command_client, quantity=5)

    results = _race(settings, scarce["sku"])

    winners = [body for status, body in results if status == 201]
    losers = [(status, body) for status, body in results if status != 201]
    assert len(winners) == quantity, results
    assert len(losers) == 20 - quantity
    for status, body in losers:
        assert status == 409, body
        assert body["error"] == "insufficient_stock"
        assert [s["sku"] for s in body["short"]] == [scarce["sku"]]
        assert body["short"][0]["available"] == 0 and body["short"][0]["requested"] == 1
    assert stock(write_engine, scarce["id"]) == 0
    assert stock(write_engine, bystander["id"]) == 5
    with write_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.min(products.c.quantity))) >= 0
    assert count(write_engine, orders) == quantity
    # Each winner took exactly one distinct product version; no version was used twice.
    versions = sorted(w["product_versions"][str(scarce["id"])] for w in winners)
    assert versions == list(range(2, 2 + quantity))
    stock_events = outbox_rows(
        write_engine, outbox.c.aggregate_type == "product", outbox.c.aggregate_id == scarce["id"],
        outbox.c.type == "product.stock_changed",
    )
    assert sorted(row.payload["quantity"] for row in stock_events) == list(range(quantity))


# --- all or nothing -----------------------------------------------------------------------------


def test_order_with_one_short_line_changes_nothing(command_client, write_engine):
    plenty = create_product(command_client, quantity=10)
    scarce = create_product(command_client, quantity=2)
    events_before = count(write_engine, outbox)

    response = place(command_client, [{"sku": plenty["sku"], "quantity": 3}, {"product_id": scarce["id"], "quantity": 3}])

    assert response.status_code == 409
    body = response.get_json()
    assert body["error"] == "insufficient_stock"
    assert body["short"] == [{"sku": scarce["sku"], "product_id": scarce["id"], "requested": 3, "available": 2}]
    assert stock(write_engine, plenty["id"]) == 10
    assert stock(write_engine, scarce["id"]) == 2
    assert count(write_engine, orders) == 0
    assert count(write_engine, order_lines) == 0
    assert count(write_engine, outbox) == events_before
    with write_engine.connect() as conn:
        versions = dict(conn.execute(sa.select(products.c.id, products.c.version)).all())
    assert versions == {plenty["id"]: 1, scarce["id"]: 1}


# --- cancelling ---------------------------------------------------------------------------------


def test_cancel_restocks_once(command_client, write_engine):
    first = create_product(command_client, quantity=7)
    second = create_product(command_client, quantity=4)
    placed = place(command_client, [{"sku": first["sku"], "quantity": 3}, {"product_id": second["id"], "quantity": 4}])
    assert placed.status_code == 201
    order = placed.get_json()
    assert stock(write_engine, first["id"]) == 4
    assert stock(write_engine, second["id"]) == 0

    once = cancel(command_client, order["id"])
    assert once.status_code == 200
    cancelled = once.get_json()
    assert cancelled["status"] == "cancelled" and cancelled["version"] == 2
    assert cancelled["product_versions"] == {str(first["id"]): 3, str(second["id"]): 3}
    assert stock(write_engine, first["id"]) == 7
    assert stock(write_engine, second["id"]) == 4

    twice = cancel(command_client, order["id"])
    assert twice.status_code == 200
    again = twice.get_json()
    assert again["status"] == "cancelled" and again["version"] == 2
    assert again["product_versions"] == {} and again["position"] is None
    assert stock(write_engine, first["id"]) == 7
    assert stock(write_engine, second["id"]) == 4

    assert count(write_engine, orders) == 1
    with write_engine.connect() as conn:
        row = conn.execute(sa.select(orders)).one()
    assert row.status == "cancelled" and row.version == 2
    cancelled_events = outbox_rows(write_engine, outbox.c.type == "order.cancelled")
    assert len(cancelled_events) == 1
    assert cancelled_events[0].aggregate_id == order["id"] and cancelled_events[0].aggregate_version == 2
    restocks = outbox_rows(write_engine, outbox.c.type == "product.stock_changed", outbox.c.payload["reason"].astext == "order.cancelled")
    assert sorted((r.aggregate_id, r.payload["delta"], r.payload["quantity"]) for r in restocks) == sorted(
        [(first["id"], 3, 7), (second["id"], 4, 4)]
    )
    by_product = {r.aggregate_id: r.payload for r in restocks}
    assert by_product[first["id"]]["units_sold_delta"] == -3
    assert by_product[first["id"]]["revenue_delta"] == "-30.00"


def test_cancel_unknown_order_is_404(command_client):
    for order_id in (1, 999999, 0, 2**63 - 1, 2**63):
        response = cancel(command_client, order_id)
        assert response.status_code == 404, order_id
        assert response.get_json()["error"] == "not_found"


def test_cancelled_then_reordered_stock(command_client, write_engine):
    product = create_product(command_client, quantity=1)
    first = place(command_client, [{"sku": product["sku"], "quantity": 1}]).get_json()
    assert place(command_client, [{"sku": product["sku"], "quantity": 1}]).status_code == 409
    assert cancel(command_client, first["id"]).status_code == 200
    assert place(command_client, [{"sku": product["sku"], "quantity": 1}]).status_code == 201
    assert stock(write_engine, product["id"]) == 0


def _at_once(functions) -> list:
    """Run each function in its own thread, all released together; their results in order."""
    barrier = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def run(index):
        barrier.wait()
        results[index] = functions[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    return results


def test_concurrent_cancels_restock_once(command_client, write_engine, settings):
    from cqrs_demo.write.app import create_app

    product = create_product(command_client, quantity=10)
    order = place(command_client, [{"sku": product["sku"], "quantity": 4}]).get_json()
    app = create_app(settings)
    try:
        clients = [app.test_client() for _ in range(10)]
        results = _at_once([lambda c=c: cancel(c, order["id"]) for c in clients])
    finally:
        app.extensions["cqrs"]["engine"].dispose()
    assert [r.status_code for r in results] == [200] * 10
    assert all(r.get_json()["status"] == "cancelled" for r in results)
    assert sum(1 for r in results if r.get_json()["product_versions"]) == 1
    assert stock(write_engine, product["id"]) == 10
    assert len(outbox_rows(write_engine, outbox.c.type == "order.cancelled")) == 1


def test_delete_racing_orders_never_orphans_an_order(command_client, write_engine, settings):
    from cqrs_demo.write.app import create_app

    for _ in range(5):
        product = create_product(command_client, quantity=100)
        app = create_app(settings)
        try:
            clients = [app.test_client() for _ in range(9)]
            orders_ = [lambda c=c: place(c, [{"product_id": product["id"], "quantity": 1}]) for c in clients[:8]]
            delete = [lambda: clients[8].delete(f"/api/products/{product['id']}")]
            results = _at_once(orders_ + delete)
        finally:
            app.extensions["cqrs"]["engine"].dispose()
        ordered, deleted = results[:8], results[8]
        won = sorted(r.get_json()["id"] for r in ordered if r.status_code == 201)
        assert all(r.status_code in (201, 404) for r in ordered), [r.get_json() for r in ordered]
        with write_engine.connect() as conn:
            exists = conn.scalar(sa.select(sa.func.count()).where(products.c.id == product["id"]))
            placed_lines = conn.scalar(
                sa.select(sa.func.count()).select_from(order_lines.join(orders))
                .where(order_lines.c.product_id == product["id"], orders.c.status == "placed")
            )
        if deleted.status_code == 200:
            assert won == [] and exists == 0 and placed_lines == 0
        else:
            assert deleted.status_code == 409 and deleted.get_json()["error"] == "product_in_open_orders"
            assert set(deleted.get_json()["orders"]) <= set(won) and deleted.get_json()["orders"]
            assert exists == 1 and placed_lines == len(won)
            assert stock(write_engine, product["id"]) == 100 - len(won)


def test_order_total_beyond_money_range_is_a_client_error(command_client, write_engine):
    dear = create_product(command_client, price="9999999999.99", quantity=10)
    response = place(command_client, [{"sku": dear["sku"], "quantity": 2}])
    assert response.status_code < 500, response.get_json()
    assert stock(write_engine, dear["id"]) == 10


def test_cancel_when_restock_would_overflow_is_not_a_server_error(command_client, write_engine):
    product = create_product(command_client, price="1.00", quantity=10)
    order = place(command_client, [{"sku": product["sku"], "quantity": 5}]).get_json()
    assert command_client.patch(f"/api/products/{product['id']}", json={"quantity": 2**31 - 1}).status_code == 200
    response = cancel(command_client, order["id"])
    assert response.status_code < 500, response.get_json()


# --- exact money --------------------------------------------------------------------------------


def test_totals_are_exact(command_client, write_engine):
    dime = create_product(command_client, price="0.10", quantity=100)
    response = place(command_client, [{"sku": dime["sku"], "quantity": 3}])
    assert response.status_code == 201
    text = response.get_data(as_text=True)
    assert re.search(r'"total":\s*0\.30[,}\s]', text), text
    assert re.search(r'"line_total":\s*0\.30[,}\s]', text), text
    assert "0.30000000000000004" not in text and "0.3000" not in text
    order = response.get_json()
    with write_engine.connect() as conn:
        total = conn.scalar(sa.select(orders.c.total).where(orders.c.id == order["id"]))
        line_total = conn.scalar(sa.select(order_lines.c.line_total).where(order_lines.c.order_id == order["id"]))
    assert isinstance(total, Decimal) and total == Decimal("0.30")
    assert line_total == Decimal("0.30")

    prices_and_quantities = [("0.10", 3), ("19.99", 7), ("0.01", 1), ("1234567.89", 2), ("0.07", 13)]
    mixed = [create_product(command_client, price=price, quantity=50) for price, _ in prices_and_quantities]
    lines = [{"product_id": p["id"], "quantity": q} for p, (_, q) in zip(mixed, prices_and_quantities)]
    response = place(command_client, lines, customer="bob")
    assert response.status_code == 201
    expected = sum((Decimal(price) * q for price, q in prices_and_quantities), Decimal("0"))
    assert expected == Decimal("2469276.93")
    assert re.search(r'"total":\s*2469276\.93[,}\s]', response.get_data(as_text=True))
    body = response.get_json()
    with write_engine.connect() as conn:
        assert conn.scalar(sa.select(orders.c.total).where(orders.c.id == body["id"])) == expected
        rows = conn.execute(
            sa.select(order_lines).where(order_lines.c.order_id == body["id"]).order_by(order_lines.c.line_no)
        ).all()
    assert [(r.line_no, r.unit_price, r.quantity, r.line_total) for r in rows] == [
        (n, Decimal(price), q, Decimal(price) * q) for n, (price, q) in enumerate(prices_and_quantities, start=1)
    ]
    [placed_event] = outbox_rows(write_engine, outbox.c.type == "order.placed", outbox.c.aggregate_id == body["id"])
    assert placed_event.payload["total"] == "2469276.93"
    assert [line["line_total"] for line in placed_event.payload["lines"]] == ["0.30", "139.93", "0.01", "2469135.78", "0.91"]


# --- validation ---------------------------------------------------------------------------------


def test_invalid_orders_are_422(command_client, write_engine):
    product = create_product(command_client, quantity=100)
    other = create_product(command_client, quantity=100)
    many = [create_product(command_client, quantity=1) for _ in range(51)]
    sku, pid = product["sku"], product["id"]
    invalid = {
        "quantity 0": {"customer": "a", "lines": [{"sku": sku, "quantity": 0}]},
        "negative quantity": {"customer": "a", "lines": [{"sku": sku, "quantity": -1}]},
        "quantity as string": {"customer": "a", "lines": [{"sku": sku, "quantity": "1"}]},
        "fractional quantity": {"customer": "a", "lines": [{"sku": sku, "quantity": 1.5}]},
        "51 lines": {"customer": "a", "lines": [{"sku": p["sku"], "quantity": 1} for p in many]},
        "no lines": {"customer": "a", "lines": []},
        "duplicate sku": {"customer": "a", "lines": [{"sku": sku, "quantity": 1}, {"sku": sku, "quantity": 2}]},
        "duplicate product_id": {"customer": "a", "lines": [{"product_id": pid, "quantity": 1}, {"product_id": pid, "quantity": 1}]},
        "same product by sku and id": {"customer": "a", "lines": [{"sku": sku, "quantity": 1}, {"product_id": pid, "quantity": 1}]},
        "both sku and product_id": {"customer": "a", "lines": [{"sku": sku, "product_id": pid, "quantity": 1}]},
        "sku and id of different products": {"customer": "a", "lines": [{"sku": other["sku"], "product_id": pid, "quantity": 1}]},
        "neither sku nor product_id": {"customer": "a", "lines": [{"quantity": 1}]},
        "missing customer": {"lines": [{"sku": sku, "quantity": 1}]},
        "blank customer": {"customer": "   ", "lines": [{"sku": sku, "quantity": 1}]},
        "unknown field": {"customer": "a", "lines": [{"sku": sku, "quantity": 1}], "discount": 5},
        "product_id 0": {"customer": "a", "lines": [{"product_id": 0, "quantity": 1}]},
        "product_id beyond bigint": {"customer": "a", "lines": [{"product_id": 2**63, "quantity": 1}]},
        "quantity beyond integer": {"customer": "a", "lines": [{"sku": sku, "quantity": 2**31}]},
        "lines not a list": {"customer": "a", "lines": {"sku": sku, "quantity": 1}},
    }
    for case, body in invalid.items():
        response = command_client.post("/api/orders", json=body)
        assert response.status_code == 422, (case, response.get_json())
        assert response.get_json()["error"] == "validation_failed", case
    # exactly 50 lines is the limit, and allowed
    fifty = place(command_client, [{"sku": p["sku"], "quantity": 1} for p in many[:50]])
    assert fifty.status_code == 201, fifty.get_json()
    assert len(fifty.get_json()["lines"]) == 50
    assert stock(write_engine, product["id"]) == 100
    assert count(write_engine, orders) == 1


def test_unknown_products_are_404(command_client, write_engine):
    known = create_product(command_client, quantity=5)
    events_before = count(write_engine, outbox)
    cases = {
        "unknown sku": [{"sku": "NO-SUCH-SKU", "quantity": 1}],
        "unknown product_id": [{"product_id": 987654321, "quantity": 1}],
        "known then unknown": [{"sku": known["sku"], "quantity": 1}, {"product_id": known["id"] + 1000, "quantity": 1}],
    }
    for case, lines in cases.items():
        response = place(command_client, lines)
        assert response.status_code == 404, (case, response.get_json())
        assert response.get_json()["error"] == "not_found", case
    assert place(command_client, cases["unknown sku"]).get_json()["sku"] == "NO-SUCH-SKU"
    assert place(command_client, cases["unknown product_id"]).get_json()["product_id"] == 987654321
    assert stock(write_engine, known["id"]) == 5
    assert count(write_engine, orders) == 0
    assert count(write_engine, outbox) == events_before


def test_order_requests_that_are_not_json(command_client):
    assert command_client.post("/api/orders", data="customer=a", content_type="text/plain").status_code == 415
    assert command_client.post("/api/orders", data="{", content_type="application/json").status_code == 400
    assert command_client.post("/api/orders", json=[1]).status_code == 422


# --- products on open orders --------------------------------------------------------------------


def test_product_on_open_order_cannot_be_deleted_until_cancelled(command_client, write_engine):
    product = create_product(command_client, quantity=10)
    first = place(command_client, [{"sku": product["sku"], "quantity": 1}]).get_json()
    second = place(command_client, [{"product_id": product["id"], "quantity": 2}]).get_json()

    refused = command_client.delete(f"/api/products/{product['id']}")
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["error"] == "product_in_open_orders"
    assert body["orders"] == [first["id"], second["id"]]
    assert stock(write_engine, product["id"]) == 7

    assert cancel(command_client, first["id"]).status_code == 200
    still = command_client.delete(f"/api/products/{product['id']}")
    assert still.status_code == 409 and still.get_json()["orders"] == [second["id"]]

    assert cancel(command_client, second["id"]).status_code == 200
    deleted = command_client.delete(f"/api/products/{product['id']}")
    assert deleted.status_code == 200, deleted.get_json()
    assert deleted.get_json()["deleted"] is True
    assert count(write_engine, products, products.c.id == product["id"]) == 0
    # The order lines still record the product as it was.
    with write_engine.connect() as conn:
        skus = conn.scalars(sa.select(order_lines.c.sku).where(order_lines.c.product_id == product["id"])).all()
    assert skus == [product["sku"], product["sku"]]
    # And the deleted product can no longer be ordered, by sku or by id.
    assert place(command_client, [{"sku": product["sku"], "quantity": 1}]).status_code == 404
    assert place(command_client, [{"product_id": product["id"], "quantity": 1}]).status_code == 404


# --- events -------------------------------------------------------------------------------------


def test_each_order_records_its_events(command_client, write_engine):
    a = create_product(command_client, price="1.25", quantity=10)
    b = create_product(command_client, price="3.00", quantity=10)
    # Move b to version 2 first, so "next version" is not always 2.
    patched = command_client.patch(f"/api/products/{b['id']}", json={"name": "B renamed"})
    assert patched.status_code == 200 and patched.get_json()["version"] == 2

    response = place(command_client, [{"sku": a["sku"], "quantity": 2}, {"product_id": b["id"], "quantity": 5}], customer="carol")
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/orders/{response.get_json()['id']}"
    order = response.get_json()
    assert order["version"] == 1 and order["status"] == "placed" and order["customer"] == "carol"
    assert order["product_versions"] == {str(a["id"]): 2, str(b["id"]): 3}

    events = outbox_rows(write_engine, outbox.c.position > b["position"])
    events = [e for e in events if e.type != "product.updated"]
    placed = [e for e in events if e.type == "order.placed"]
    stock_changes = [e for e in events if e.type == "product.stock_changed"]
    assert len(placed) == 1 and len(stock_changes) == 2 and len(events) == 3
    [event] = placed
    assert (event.aggregate_type, event.aggregate_id, event.aggregate_version) == ("order", order["id"], 1)
    assert event.position == order["position"]
    assert event.payload["customer"] == "carol" and event.payload["total"] == "17.50"
    assert [(line["sku"], line["name"], line["quantity"], line["unit_price"]) for line in event.payload["lines"]] == [
        (a["sku"], a["name"], 2, "1.25"),
        (b["sku"], "B renamed", 5, "3.00"),
    ]
    changes = {e.aggregate_id: e for e in stock_changes}
    assert set(changes) == {a["id"], b["id"]}
    for product_id, version in order["product_versions"].items():
        e = changes[int(product_id)]
        assert e.aggregate_type == "product" and e.aggregate_version == version
        assert e.payload["reason"] == "order.placed" and e.payload["order_id"] == order["id"]
    assert changes[a["id"]].payload == {
        "quantity": 8, "delta": -2, "reason": "order.placed", "order_id": order["id"],
        "units_sold_delta": 2, "revenue_delta": "2.50",
    }
    assert changes[b["id"]].payload["quantity"] == 5 and changes[b["id"]].payload["revenue_delta"] == "15.00"
    # Events are recorded at the version the product row now has.
    with write_engine.connect() as conn:
        versions = dict(conn.execute(sa.select(products.c.id, products.c.version)).all())
    assert versions == {a["id"]: 2, b["id"]: 3}
    # Every (aggregate, version) appears once in the whole outbox.
    all_rows = outbox_rows(write_engine)
    keys = [(r.aggregate_type, r.aggregate_id, r.aggregate_version) for r in all_rows]
    assert len(keys) == len(set(keys))
