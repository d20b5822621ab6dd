"""Orders through the whole pipeline: command service -> PostgreSQL outbox -> relay -> RabbitMQ ->
projector -> MongoDB -> query service. Real servers, in-process relay and projector.

Waiting is done with the query service's own read-your-writes parameter (`min_version`), never
with sleeps. A single projector applies events in publication order, and an order's event is
recorded after its stock changes, so once an order document is at a version, the stock and sales
changes of that command are in the read model too.
"""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pika
import simplejson
import sqlalchemy as sa

from cqrs_demo.consistency import compare, wait_until_equal
from cqrs_demo.connections import amqp_parameters
from cqrs_demo.polling import wait_until
from cqrs_demo.read import projection
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import outbox

READ_DEADLINE = 30.0


def _json(body) -> str:
    return simplejson.dumps(body, use_decimal=True)


def post(client, path, body=None):
    if body is None:
        return client.post(path)
    return client.post(path, data=_json(body), content_type="application/json")


def create_product(client, sku, *, name=None, price="10.00", quantity=10) -> dict:
    body = {"name": name or f"Product {sku}", "description": "", "price": Decimal(price), "quantity": quantity, "sku": sku}
    response = post(client, "/api/products", body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def place(client, lines, customer="alice"):
    return post(client, "/api/orders", {"customer": customer, "lines": lines})


def placed(client, lines, customer="alice") -> dict:
    response = place(client, lines, customer)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def cancel(client, order_id) -> dict:
    response = post(client, f"/api/orders/{order_id}/cancel")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def read(query_client, path: str, min_version: int):
    """GET `path` once the read model has it at `min_version`; the 503 means "not yet", so ask again."""
    def answered():
        response = query_client.get(path, query_string={"min_version": min_version})
        return response if response.status_code != 503 else None

    response = wait_until(answered, READ_DEADLINE, interval=0, what=f"{path} at version {min_version}")
    assert response.status_code == 200, (path, min_version, response.get_json())
    return response


def wait_projected(query_client, position: int) -> dict:
    """Wait until the projector has applied the event at `position` (the write side returns it).

    For stats, which have no version of their own: a product event updates the product document
    and then its sales document, so `min_version` on the product does not yet cover the sales.
    The watermark passes a position only once every event up to it is applied, both writes included.
    """
    def reached():
        status = query_client.get("/api/projection").get_json()
        return status if status["watermark"] >= position else None

    return wait_until(reached, READ_DEADLINE, interval=0.01, what=f"the projector to pass position {position}")


def read_order(query_client, order_id: int, version: int) -> dict:
    return read(query_client, f"/api/orders/{order_id}", version).get_json()


def read_product(query_client, product_id: int, version: int) -> dict:
    return read(query_client, f"/api/products/{product_id}", version).get_json()


def top(query_client, limit: int = 10) -> list[dict]:
    response = query_client.get("/api/stats/top-products", query_string={"limit": limit})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def top_rows(query_client, limit: int = 10) -> list[tuple]:
    return [(t["sku"], t["units_sold"], Decimal(str(t["revenue"]))) for t in top(query_client, limit)]


def list_orders(query_client, **params):
    response = query_client.get("/api/orders", query_string=params)
    assert response.status_code == 200, response.get_json()
    return response


def exact_money(line: dict) -> dict:
    return {**line, "unit_price": Decimal(str(line["unit_price"])), "line_total": Decimal(str(line["line_total"]))}


def same_instant(a: datetime, b: datetime) -> bool:
    """Equal to MongoDB's precision: BSON dates keep milliseconds, PostgreSQL microseconds."""
    return abs(a - b) < timedelta(milliseconds=1)


def instant(text: str) -> datetime:
    """A served timestamp as an aware datetime. A naive one is read as UTC: the MongoDB stand-in
    serves timestamps set by an update that way (see the xfail test below)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# --- the order document -------------------------------------------------------------------------


def test_order_document_keeps_the_product_as_ordered(command_client, query_client, pipeline):
    widget = create_product(command_client, "WID-1", name="Widget", price="2.50", quantity=10)
    dime = create_product(command_client, "DIME-1", name="Dime", price="0.10", quantity=10)
    order = placed(command_client, [{"sku": "WID-1", "quantity": 4}, {"product_id": dime["id"], "quantity": 3}], "dora")

    renamed = command_client.patch(f"/api/products/{widget['id']}", json={"name": "Widget Pro", "price": 99})
    assert renamed.status_code == 200
    assert read_product(query_client, widget["id"], renamed.get_json()["version"])["name"] == "Widget Pro"

    response = read(query_client, f"/api/orders/{order['id']}", 1)
    assert response.headers["ETag"] == '"1"' and response.headers["X-Read-Model-Version"] == "1"
    text = response.get_data(as_text=True)
    assert re.search(r'"total":\s*10\.30[,}\s]', text), text
    assert re.search(r'"line_total":\s*0\.30[,}\s]', text), text
    document = response.get_json()
    assert document["id"] == order["id"]
    assert document["customer"] == "dora" and document["status"] == "placed" and document["version"] == 1
    assert [exact_money(line) for line in document["lines"]] == [
        {"line_no": 1, "product_id": widget["id"], "sku": "WID-1", "name": "Widget", "quantity": 4,
         "unit_price": Decimal("2.50"), "line_total": Decimal("10.00")},
        {"line_no": 2, "product_id": dime["id"], "sku": "DIME-1", "name": "Dime", "quantity": 3,
         "unit_price": Decimal("0.10"), "line_total": Decimal("0.30")},
    ]
    assert re.search(r'"unit_price":\s*2\.50[,}\s]', text) and re.search(r'"line_total":\s*10\.00[,}\s]', text)
    assert Decimal(str(document["total"])) == Decimal("10.30")
    placed_at = datetime.fromisoformat(document["placed_at"])
    assert same_instant(placed_at, datetime.fromisoformat(order["created_at"]))
    assert document["cancelled_at"] is None
    assert datetime.fromisoformat(document["committed_at"]) >= placed_at
    assert datetime.fromisoformat(document["projected_at"]) >= datetime.fromisoformat(document["committed_at"])

    cancelled = cancel(command_client, order["id"])
    after = read_order(query_client, order["id"], cancelled["version"])
    assert after["status"] == "cancelled" and after["version"] == 2
    assert same_instant(instant(after["cancelled_at"]), instant(cancelled["updated_at"]))
    assert instant(after["committed_at"]) >= instant(after["cancelled_at"]) - timedelta(milliseconds=1)
    assert after["lines"] == document["lines"] and after["total"] == document["total"]
    assert after["placed_at"] == document["placed_at"]

    missing = query_client.get("/api/orders/999999")
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_timestamps_of_updated_documents_are_iso_8601_with_offset(command_client, query_client, pipeline):
    product = create_product(command_client, "TS-1", quantity=5)
    order = placed(command_client, [{"sku": "TS-1", "quantity": 1}])
    cancelled = cancel(command_client, order["id"])
    document = read_order(query_client, order["id"], cancelled["version"])
    restocked = read_product(query_client, product["id"], cancelled["product_versions"][str(product["id"])])
    served = {f"order.{field}": document[field] for field in ("placed_at", "cancelled_at", "committed_at", "projected_at")}
    served |= {f"product.{field}": restocked[field] for field in ("committed_at", "projected_at")}
    for field, value in served.items():
        assert "T" in value and datetime.fromisoformat(value).tzinfo is not None, (field, value)
    assert same_instant(datetime.fromisoformat(document["cancelled_at"]), datetime.fromisoformat(cancelled["updated_at"]))


def test_top_products_deleted_flag_is_a_boolean(command_client, query_client, pipeline):
    product = create_product(command_client, "BOOL-1", quantity=5)
    placed(command_client, [{"sku": "BOOL-1", "quantity": 1}])
    renamed = command_client.patch(f"/api/products/{product['id']}", json={"name": "Renamed"}).get_json()
    wait_projected(query_client, renamed["position"])
    [row] = top(query_client)
    assert row["name"] == "Renamed"
    assert row["deleted"] is False, row


def test_read_model_products_show_current_stock(command_client, query_client, pipeline):
    a = create_product(command_client, "STK-A", quantity=10)
    b = create_product(command_client, "STK-B", quantity=3)
    first = placed(command_client, [{"sku": "STK-A", "quantity": 4}, {"sku": "STK-B", "quantity": 3}])
    second = placed(command_client, [{"sku": "STK-A", "quantity": 6}])
    assert place(command_client, [{"sku": "STK-B", "quantity": 1}]).status_code == 409

    pa = read_product(query_client, a["id"], second["product_versions"][str(a["id"])])
    pb = read_product(query_client, b["id"], first["product_versions"][str(b["id"])])
    assert (pa["quantity"], pa["version"]) == (0, 3)
    assert (pb["quantity"], pb["version"]) == (0, 2)
    out_of_stock = query_client.get("/api/products", query_string={"in_stock": "false"}).get_json()
    assert sorted(p["sku"] for p in out_of_stock) == ["STK-A", "STK-B"]

    restocked = cancel(command_client, first["id"])
    pa = read_product(query_client, a["id"], restocked["product_versions"][str(a["id"])])
    pb = read_product(query_client, b["id"], restocked["product_versions"][str(b["id"])])
    assert (pa["quantity"], pa["version"]) == (4, 4)
    assert (pb["quantity"], pb["version"]) == (3, 3)
    in_stock = query_client.get("/api/products", query_string={"in_stock": "true"}).get_json()
    assert sorted((p["sku"], p["quantity"]) for p in in_stock) == [("STK-A", 4), ("STK-B", 3)]


# --- lists and statistics -----------------------------------------------------------------------


def test_order_lists_and_top_products(command_client, query_client, pipeline, read_db, write_engine):
    cheap = create_product(command_client, "TOP-CHEAP", price="0.10", quantity=1000)
    mid = create_product(command_client, "TOP-MID", price="19.99", quantity=1000)
    dear = create_product(command_client, "TOP-DEAR", price="1234.56", quantity=1000)
    idle = create_product(command_client, "TOP-IDLE", price="1.00", quantity=1000)

    plan = [
        ("ann", [("TOP-CHEAP", 7), ("TOP-MID", 2)]),
        ("ben", [("TOP-CHEAP", 3)]),
        ("ann", [("TOP-DEAR", 1), ("TOP-MID", 3)]),
        ("cat", [("TOP-CHEAP", 10), ("TOP-DEAR", 1)]),
        ("ann", [("TOP-MID", 1)]),
        ("ben", [("TOP-DEAR", 4)]),
    ]
    orders = [placed(command_client, [{"sku": s, "quantity": q} for s, q in lines], who) for who, lines in plan]
    for order in orders:
        read_order(query_client, order["id"], 1)

    # CHEAP 20 units (2.00), DEAR 6 units (7407.36), MID 6 units (119.94): ties go to the lower id.
    assert top_rows(query_client) == [
        ("TOP-CHEAP", 20, Decimal("2.00")),
        ("TOP-MID", 6, Decimal("119.94")),
        ("TOP-DEAR", 6, Decimal("7407.36")),
    ]
    assert top_rows(query_client, limit=1) == [("TOP-CHEAP", 20, Decimal("2.00"))]
    text = query_client.get("/api/stats/top-products", query_string={"limit": 3}).get_data(as_text=True)
    assert re.search(r'"revenue":\s*2\.00[,}\s]', text) and re.search(r'"revenue":\s*7407\.36[,}\s]', text), text
    assert [t["product_id"] for t in top(query_client)] == [cheap["id"], mid["id"], dear["id"]]
    assert idle["id"] not in [t["product_id"] for t in top(query_client, 100)]
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": "x"}, {"top": 1}):
        assert query_client.get("/api/stats/top-products", query_string=bad).status_code == 400, bad

    # Cancel ann's second order and cat's order: their sales are reversed.
    for order in (orders[2], orders[3]):
        read_order(query_client, order["id"], cancel(command_client, order["id"])["version"])
    assert top_rows(query_client) == [
        ("TOP-CHEAP", 10, Decimal("1.00")),
        ("TOP-DEAR", 4, Decimal("4938.24")),
        ("TOP-MID", 3, Decimal("59.97")),
    ]

    # Filters and paging.
    ids = [order["id"] for order in orders]
    everything = list_orders(query_client)
    assert everything.headers["X-Total-Count"] == "6"
    assert [o["id"] for o in everything.get_json()] == ids
    ann = list_orders(query_client, customer="ann")
    assert ann.headers["X-Total-Count"] == "3"
    assert [o["id"] for o in ann.get_json()] == [ids[0], ids[2], ids[4]]
    assert all(o["customer"] == "ann" for o in ann.get_json())
    cancelled = list_orders(query_client, status="cancelled")
    assert cancelled.headers["X-Total-Count"] == "2"
    assert [o["id"] for o in cancelled.get_json()] == [ids[2], ids[3]]
    ann_placed = list_orders(query_client, customer="ann", status="placed")
    assert ann_placed.headers["X-Total-Count"] == "2"
    assert [o["id"] for o in ann_placed.get_json()] == [ids[0], ids[4]]
    assert list_orders(query_client, customer="nobody").get_json() == []
    assert list_orders(query_client, customer="ANN").headers["X-Total-Count"] == "0"

    pages = []
    for offset in range(0, 8, 2):
        page = list_orders(query_client, limit=2, offset=offset)
        assert page.headers["X-Total-Count"] == "6"
        assert (page.headers["X-Limit"], page.headers["X-Offset"]) == ("2", str(offset))
        pages.append([o["id"] for o in page.get_json()])
    assert pages == [ids[0:2], ids[2:4], ids[4:6], []]
    page = list_orders(query_client, customer="ann", limit=2, offset=2)
    assert page.headers["X-Total-Count"] == "3" and [o["id"] for o in page.get_json()] == [ids[4]]
    for bad in ({"status": "shipped"}, {"limit": 0}, {"offset": -1}, {"sort": "id"}, {"customer": "x" * 101}):
        response = query_client.get("/api/orders", query_string=bad)
        assert response.status_code == 400, bad
        assert response.get_json()["error"] == "invalid_parameter"

    # The listed documents are the same as the single-order view.
    assert list_orders(query_client, customer="cat").get_json()[0] == read_order(query_client, ids[3], 2)

    result = compare(write_engine, read_db)
    assert result["equal"], result["differences"]
    assert result["orders"] == 6 and result["products_with_sales"] == 3


def test_top_products_follow_renames_and_deletes(command_client, query_client, pipeline, read_db, write_engine):
    product = create_product(command_client, "REN-1", name="Old name", price="5.00", quantity=10)
    order = placed(command_client, [{"sku": "REN-1", "quantity": 2}])
    renamed = command_client.patch(f"/api/products/{product['id']}", json={"name": "New name"}).get_json()
    assert read_product(query_client, product["id"], renamed["version"])["name"] == "New name"
    wait_projected(query_client, renamed["position"])
    [row] = top(query_client)
    assert (row["product_id"], row["name"], row["sku"], row["units_sold"]) == (product["id"], "New name", "REN-1", 2)
    assert Decimal(str(row["revenue"])) == Decimal("10.00") and not row["deleted"]
    assert read_order(query_client, order["id"], 1)["lines"][0]["name"] == "Old name"

    read_order(query_client, order["id"], cancel(command_client, order["id"])["version"])
    assert top(query_client) == []
    deleted = command_client.delete(f"/api/products/{product['id']}")
    assert deleted.status_code == 200
    wait_projected(query_client, deleted.get_json()["position"])
    assert query_client.get(f"/api/products/{product['id']}").status_code == 404
    assert top(query_client) == []
    # The order still shows the product as it was ordered.
    assert read_order(query_client, order["id"], 2)["lines"][0]["name"] == "Old name"
    result = wait_until_equal(write_engine, read_db, timeout=30)
    assert result["equal"], result["differences"]
    assert query_client.get(f"/api/products/{product['id']}").status_code == 404


# --- a random workload --------------------------------------------------------------------------


class Model:
    """What the write side should hold, kept by the test alongside the random commands."""

    def __init__(self) -> None:
        self.products: dict[int, dict] = {}
        self.orders: dict[int, dict] = {}

    def open_orders(self, product_id: int) -> list[int]:
        return sorted(
            oid for oid, o in self.orders.items()
            if o["status"] == "placed" and any(pid == product_id for pid, _ in o["lines"])
        )


def run_random_workload(command_client, rng: random.Random, commands: int) -> tuple[Model, dict]:
    model = Model()
    seen = {"create": 0, "patch": 0, "order": 0, "short": 0, "cancel": 0, "recancel": 0, "delete": 0, "blocked": 0, "unknown": 0}
    customers = ["ann", "ben", "cat", "dan", "eve"]
    for step in range(commands):
        roll = rng.random()
        live = sorted(model.products)
        if len(live) < 3 or roll < 0.12:
            sku = f"R-{step:04d}"
            price = Decimal(rng.randint(0, 50000)) / 100
            quantity = rng.choice([0, 1, 2, 5, 10, 30])
            product = create_product(command_client, sku, price=str(price), quantity=quantity, name=f"Random {step}")
            model.products[product["id"]] = {"sku": sku, "price": price, "quantity": quantity, "version": 1}
            seen["create"] += 1
        elif roll < 0.25:
            pid = rng.choice(live)
            changes = {"price": Decimal(rng.randint(1, 99999)) / 100}
            if rng.random() < 0.3:
                changes["quantity"] = rng.randint(0, 20)
            if rng.random() < 0.2:
                changes["name"] = f"Renamed {step}"
            response = command_client.patch(f"/api/products/{pid}", data=_json(changes), content_type="application/json")
            assert response.status_code == 200, response.get_json()
            model.products[pid].update({k: v for k, v in changes.items() if k in ("price", "quantity")})
            model.products[pid]["version"] += 1
            assert response.get_json()["version"] == model.products[pid]["version"]
            seen["patch"] += 1
        elif roll < 0.65:
            chosen = rng.sample(live, rng.randint(1, min(4, len(live))))
            lines = [(pid, rng.randint(1, 6)) for pid in chosen]
            body_lines = [
                {"sku": model.products[pid]["sku"], "quantity": q} if rng.random() < 0.5 else {"product_id": pid, "quantity": q}
                for pid, q in lines
            ]
            response = place(command_client, body_lines, rng.choice(customers))
            short = [pid for pid, q in lines if model.products[pid]["quantity"] < q]
            if short:
                assert response.status_code == 409, response.get_json()
                body = response.get_json()
                assert body["error"] == "insufficient_stock"
                assert sorted(s["product_id"] for s in body["short"]) == sorted(short)
                seen["short"] += 1
                continue
            assert response.status_code == 201, response.get_json()
            order = response.get_json()
            expected_total = sum((model.products[pid]["price"] * q for pid, q in lines), Decimal("0"))
            assert Decimal(str(order["total"])) == expected_total
            for pid, q in lines:
                model.products[pid]["quantity"] -= q
                model.products[pid]["version"] += 1
                assert order["product_versions"][str(pid)] == model.products[pid]["version"]
            model.orders[order["id"]] = {"status": "placed", "lines": lines}
            seen["order"] += 1
        elif roll < 0.85:
            if not model.orders or rng.random() < 0.05:
                response = post(command_client, f"/api/orders/{rng.randint(10**6, 10**7)}/cancel")
                assert response.status_code == 404
                seen["unknown"] += 1
                continue
            oid = rng.choice(sorted(model.orders))
            order = model.orders[oid]
            result = cancel(command_client, oid)
            assert result["status"] == "cancelled"
            if order["status"] == "cancelled":
                assert result["product_versions"] == {}
                seen["recancel"] += 1
                continue
            for pid, q in order["lines"]:
                model.products[pid]["quantity"] += q
                model.products[pid]["version"] += 1
                assert result["product_versions"][str(pid)] == model.products[pid]["version"]
            order["status"] = "cancelled"
            seen["cancel"] += 1
        else:
            pid = rng.choice(live)
            response = command_client.delete(f"/api/products/{pid}")
            blocking = model.open_orders(pid)
            if blocking:
                assert response.status_code == 409, response.get_json()
                assert response.get_json()["orders"] == blocking[:20]
                seen["blocked"] += 1
            else:
                assert response.status_code == 200, response.get_json()
                del model.products[pid]
                seen["delete"] += 1
    return model, seen


def test_random_commands_leave_read_model_equal(command_client, query_client, pipeline, read_db, write_engine):
    from cqrs_demo.write.schema import orders, products

    model, seen = run_random_workload(command_client, random.Random(20240611), 400)
    assert all(seen[kind] > 0 for kind in ("create", "patch", "order", "short", "cancel", "delete", "blocked")), seen

    with write_engine.connect() as conn:
        stocks = dict(conn.execute(sa.select(products.c.id, products.c.quantity)).all())
        statuses = dict(conn.execute(sa.select(orders.c.id, orders.c.status)).all())
    assert stocks == {pid: p["quantity"] for pid, p in model.products.items()}
    assert statuses == {oid: o["status"] for oid, o in model.orders.items()}
    assert min(stocks.values()) >= 0

    result = wait_until_equal(write_engine, read_db, timeout=60)
    assert result["equal"], result["differences"]
    assert result["orders"] == len(model.orders) and result["products"] == len(model.products)
    assert result["products_with_sales"] > 0

    # The query service agrees with the model too.
    total = list_orders(query_client, limit=1000)
    assert int(total.headers["X-Total-Count"]) == len(model.orders)
    cancelled = list_orders(query_client, status="cancelled", limit=1000).get_json()
    assert sorted(o["id"] for o in cancelled) == sorted(oid for oid, o in model.orders.items() if o["status"] == "cancelled")
    sold: dict[int, int] = {}
    for order in model.orders.values():
        if order["status"] == "placed":
            for pid, q in order["lines"]:
                sold[pid] = sold.get(pid, 0) + q
    expected_top = sorted(((pid, units) for pid, units in sold.items() if units), key=lambda item: (-item[1], item[0]))
    assert [(t["product_id"], t["units_sold"]) for t in top(query_client, 100)] == expected_top[:100]


# --- duplicates and redelivery ------------------------------------------------------------------


def _snapshot(read_db) -> dict:
    return {
        name: sorted(read_db[name].find(), key=lambda doc: doc["_id"])
        for name in (projection.PRODUCTS, projection.SALES, projection.ORDERS)
    }


def test_duplicate_and_redelivered_events_change_nothing(
    command_client, query_client, pipeline, read_db, write_engine, settings
):
    model, _ = run_random_workload(command_client, random.Random(7), 80)
    assert model.orders
    result = wait_until_equal(write_engine, read_db, timeout=60)
    assert result["equal"], result["differences"]
    before_top = top(query_client, 100)
    before_orders = list_orders(query_client, limit=1000).get_json()
    before = _snapshot(read_db)
    with write_engine.connect() as conn:
        rows = conn.execute(sa.select(outbox).order_by(outbox.c.position)).all()
    events = [event_from_row(row) for row in rows]
    assert {e.type for e in events} >= {"order.placed", "order.cancelled", "product.stock_changed"}
    # All published, so the pipeline's own status reflects every one of them.
    assert result["unpublished_events"] == 0
    status = query_client.get("/api/projection").get_json()
    assert status["applied"] == len(events) and status["gaps"] == 0
    duplicates_before = status["duplicates"]

    # Again, directly: every event is recognised as already applied.
    outcomes = [projection.project(read_db, event) for event in events]
    assert outcomes == [Outcome.DUPLICATE] * len(events)
    assert _snapshot(read_db) == before

    # Again, through the broker, as a redelivery after a relay crash would send them.
    connection = pika.BlockingConnection(amqp_parameters(settings))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for event in events:
            channel.basic_publish(
                exchange=settings.exchange,
                routing_key=event.type,
                body=event.to_json(),
                properties=pika.BasicProperties(
                    content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=event.event_id, type=event.type,
                ),
                mandatory=True,
            )
        # And in reverse order, which must not count as gaps or overwrite newer state.
        for event in reversed(events):
            channel.basic_publish(exchange=settings.exchange, routing_key=event.type, body=event.to_json(), mandatory=True)
    finally:
        connection.close()

    status = wait_until(
        lambda: (s := query_client.get("/api/projection").get_json())["duplicates"]
        >= duplicates_before + 2 * len(events) and s,
        60,
        what="every copy to be counted as a duplicate",
    )
    assert status["duplicates"] == duplicates_before + 2 * len(events), status
    assert status["applied"] == len(events) and status["gaps"] == 0

    assert _snapshot(read_db) == before
    assert top(query_client, 100) == before_top
    assert list_orders(query_client, limit=1000).get_json() == before_orders
    result = compare(write_engine, read_db)
    assert result["equal"], result["differences"]
    assert pipeline["projector"].counts.get("dead_lettered", 0) == 0
