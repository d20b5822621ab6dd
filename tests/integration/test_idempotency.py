"""Idempotent commands: a retry with the same Idempotency-Key gets the first answer, and no second effect.

Counted where it matters: orders and products in PostgreSQL, and events in the event log.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
import requests
import sqlalchemy as sa

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.connections import read_database
from cqrs_demo.polling import wait_until
from cqrs_demo.write import idempotency
from cqrs_demo.write.event_log import event_log
from cqrs_demo.write.schema import idempotency_keys, orders, products
from support import SEED_PRODUCT

pytestmark = pytest.mark.timeout(120)


def key() -> str:
    return f'"{uuid.uuid4()}"'


def product(client, sku: str = "SKU-IDEM-1", quantity: int = 10) -> dict:
    response = client.post("/api/products", json={**SEED_PRODUCT, "sku": sku, "quantity": quantity})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def order_body(product_id: int, quantity: int = 2) -> dict:
    return {"customer": "ada", "lines": [{"product_id": product_id, "quantity": quantity}]}


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table))


def events_of(engine, kind: str) -> list:
    return [event for event in event_log(engine) if event.type == kind]


def stock(engine, product_id: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(products.c.quantity).where(products.c.id == product_id))


def test_a_retry_gets_the_first_answer_and_changes_nothing(command_client, write_engine):
    pid = product(command_client)["id"]
    headers = {"Idempotency-Key": key()}
    first = command_client.post("/api/orders", json=order_body(pid), headers=headers)
    again = command_client.post("/api/orders", json=order_body(pid), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data() and again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert count(write_engine, orders) == 1 and stock(write_engine, pid) == 8
    assert len(events_of(write_engine, "order.placed")) == 1
    assert len(events_of(write_engine, "product.stock_changed")) == 1


def test_key_syntax_a_quoted_string_or_a_bare_token_is_the_same_key(command_client, write_engine):
    first = command_client.post("/api/products", json=SEED_PRODUCT, headers={"Idempotency-Key": '"abc-123"'})
    again = command_client.post("/api/products", json=SEED_PRODUCT, headers={"Idempotency-Key": "abc-123"})
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["ETag"] == first.headers["ETag"]
    assert count(write_engine, products) == 1


@pytest.mark.parametrize("value", ['""', '"', '"abc', "two words", '"ключ"', '"' + "k" * 256 + '"', 'a"b'])
def test_a_malformed_key_is_refused_before_anything_runs(command_client, write_engine, value):
    response = command_client.post("/api/products", json=SEED_PRODUCT, headers={"Idempotency-Key": value})
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "invalid_idempotency_key" and body["parameter"] == "Idempotency-Key", body
    assert count(write_engine, products) == 0


def test_two_keys_in_one_request_are_refused(command_client, write_engine):
    response = command_client.post("/api/products", json=SEED_PRODUCT,
                                   headers=[("Idempotency-Key", '"a"'), ("Idempotency-Key", '"b"')])
    assert response.status_code == 400 and "not 2" in response.get_json()["message"]
    assert count(write_engine, products) == 0


def test_the_same_key_with_a_different_request_is_refused_with_422(command_client, write_engine):
    pid = product(command_client)["id"]
    headers = {"Idempotency-Key": key()}
    assert command_client.post("/api/orders", json=order_body(pid, 2), headers=headers).status_code == 201

    different = command_client.post("/api/orders", json=order_body(pid, 3), headers=headers)
    elsewhere = command_client.post("/api/products", json={**SEED_PRODUCT, "sku": "OTHER"}, headers=headers)
    for response in (different, elsewhere):
        assert response.status_code == 422, response.get_json()
        body = response.get_json()
        assert body["error"] == "idempotency_key_reused" and "different request" in body["message"], body
    assert count(write_engine, orders) == 1 and count(write_engine, products) == 1 and stock(write_engine, pid) == 8


def test_the_same_body_written_differently_is_the_same_request(command_client, write_engine):
    headers = {"Idempotency-Key": key(), "Content-Type": "application/json"}
    compact = json.dumps(SEED_PRODUCT, separators=(",", ":"))
    spaced = json.dumps(dict(reversed(list(SEED_PRODUCT.items()))), indent=4)
    assert command_client.post("/api/products", data=compact, headers=headers).status_code == 201
    again = command_client.post("/api/products", data=spaced, headers=headers)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def test_a_refusal_is_remembered_too(command_client, write_engine):
    pid = product(command_client, quantity=1)["id"]
    headers = {"Idempotency-Key": key()}
    refused = command_client.post("/api/orders", json=order_body(pid, 5), headers=headers)
    assert refused.status_code == 409 and refused.get_json()["error"] == "insufficient_stock"
    assert command_client.patch(f"/api/products/{pid}", json={"quantity": 100}).status_code == 200

    again = command_client.post("/api/orders", json=order_body(pid, 5), headers=headers)
    assert again.status_code == 409 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == refused.get_data()
    assert count(write_engine, orders) == 0 and stock(write_engine, pid) == 100
    assert events_of(write_engine, "order.placed") == []


def test_cancelling_with_a_key_replays_the_first_cancellation(command_client, write_engine):
    pid = product(command_client)["id"]
    order_id = command_client.post("/api/orders", json=order_body(pid)).get_json()["id"]
    headers = {"Idempotency-Key": key()}
    first = command_client.post(f"/api/orders/{order_id}/cancel", headers=headers)
    again = command_client.post(f"/api/orders/{order_id}/cancel", headers=headers)
    assert first.status_code == again.status_code == 200 and again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true" and stock(write_engine, pid) == 10


def test_concurrent_duplicates_run_once(settings, command_client, write_engine):
    pid = product(command_client)["id"]
    app = command_client.application
    headers = {"Idempotency-Key": key()}
    start = threading.Barrier(8)
    answers = []

    def send():
        client = app.test_client()
        start.wait()
        answers.append(client.post("/api/orders", json=order_body(pid), headers=headers))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    ran = [a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers]
    replayed = [a for a in answers if a.status_code == 201 and a.headers.get("Idempotent-Replayed") == "true"]
    in_use = [a for a in answers if a.status_code == 409 and a.get_json()["error"] == "idempotency_key_in_use"]
    assert len(ran) == 1 and len(ran) + len(replayed) + len(in_use) == 8, [a.status_code for a in answers]
    assert all(a.get_data() == ran[0].get_data() for a in replayed)
    assert count(write_engine, orders) == 1 and stock(write_engine, pid) == 8
    assert len(events_of(write_engine, "order.placed")) == 1


def test_an_expired_key_is_forgotten_and_purged(settings, command_client, write_engine):
    pid = product(command_client)["id"]
    old, other = {"Idempotency-Key": key()}, {"Idempotency-Key": key()}
    assert command_client.post("/api/orders", json=order_body(pid), headers=old).status_code == 201
    assert command_client.post("/api/orders", json=order_body(pid, 1), headers=other).status_code == 201
    with write_engine.begin() as conn:  # a day passes
        conn.execute(idempotency_keys.update().values(expires_at=sa.func.now() - sa.text("interval '1 second'")))

    again = command_client.post("/api/orders", json=order_body(pid), headers=old)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers  # a new request now
    assert count(write_engine, orders) == 3 and stock(write_engine, pid) == 5

    assert idempotency.purge_expired(write_engine) == 1  # `other`; `old` is remembered afresh
    with write_engine.connect() as conn:
        left = list(conn.scalars(sa.select(idempotency_keys.c.key)))
    assert left == [old["Idempotency-Key"].strip('"')]


def test_keys_are_remembered_for_the_configured_time(settings, write_engine):
    from cqrs_demo.write.app import create_app

    app = create_app(settings.with_(idempotency_key_hours=0.5))
    try:
        client = app.test_client()
        assert client.post("/api/products", json=SEED_PRODUCT, headers={"Idempotency-Key": key()}).status_code == 201
        with write_engine.connect() as conn:
            kept = conn.scalar(sa.select(idempotency_keys.c.expires_at - idempotency_keys.c.created_at))
        assert kept.total_seconds() == 1800
    finally:
        app.extensions["cqrs"]["engine"].dispose()


def test_a_client_that_gave_up_and_retried_gets_one_order(stack, settings, write_engine):
    command = stack.urls()["command"]
    pid = requests.post(f"{command}/api/products", json={**SEED_PRODUCT, "quantity": 10}, timeout=10).json()["id"]
    headers = {"Idempotency-Key": key()}
    body = order_body(pid)

    # Someone holds the product's row: the order's transaction waits behind it, the client gives up.
    holder = write_engine.connect()
    held = holder.begin()
    holder.execute(sa.select(products.c.id).where(products.c.id == pid).with_for_update())
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(f"{command}/api/orders", json=body, headers=headers, timeout=1.0)
        # Retried while the first is still running: told so at once, nothing runs twice.
        busy = requests.post(f"{command}/api/orders", json=body, headers=headers, timeout=10)
        assert busy.status_code == 409 and busy.json()["error"] == "idempotency_key_in_use", busy.text
        assert busy.headers["Retry-After"] == "1"
    finally:
        held.rollback()
        holder.close()

    def answered():
        response = requests.post(f"{command}/api/orders", json=body, headers=headers, timeout=10)
        return response if response.status_code == 201 else None

    retried = wait_until(answered, 10, interval=0.1, what="the first request to finish")
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert count(write_engine, orders) == 1 and stock(write_engine, pid) == 8
    assert len(events_of(write_engine, "order.placed")) == 1
    assert len(events_of(write_engine, "product.stock_changed")) == 1
    result = wait_until_equal(write_engine, read_database(stack.settings), 20)
    assert result["equal"], result
