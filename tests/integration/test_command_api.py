"""The command service over HTTP, on real PostgreSQL: status codes, bodies, and the outbox."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from cqrs_demo.write.schema import outbox, products
from support import SEED_PRODUCT



# --- helpers ---------------------------------------------------------------------------------


def body(**changes) -> dict:
    return {**SEED_PRODUCT, **changes}


def without(field: str) -> dict:
    return {name: value for name, value in SEED_PRODUCT.items() if name != field}


def create(client, **changes) -> dict:
    response = client.post("/api/products", json=body(**changes))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def send_raw(client, method: str, url: str, text: str, content_type: str = "application/json", **kwargs):
    return client.open(url, method=method, data=text, content_type=content_type, **kwargs)


def decimal_json(response):
    """The response body parsed with exact decimals, as a careful client would read money."""
    return json.loads(response.get_data(as_text=True), parse_float=Decimal)


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.headers.get("Content-Type")
    payload = response.get_json()
    assert isinstance(payload.get("error"), str) and payload["error"]
    assert isinstance(payload.get("message"), str) and payload["message"]
    if error is not None:
        assert payload["error"] == error
    return payload


def assert_invalid(response, *fields: str) -> dict:
    payload = assert_error(response, 422, "validation_failed")
    for field in fields:
        assert field in payload["fields"], payload
        assert isinstance(payload["fields"][field], str) and payload["fields"][field]
    return payload["fields"]


def outbox_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(outbox).order_by(outbox.c.position)).all()


def product_row(engine, product_id: int):
    with engine.connect() as conn:
        return conn.execute(sa.select(products).where(products.c.id == product_id)).one_or_none()


# --- create ----------------------------------------------------------------------------------


def test_post_seed_body_creates_version_one(command_client):
    response = command_client.post("/api/products", json=SEED_PRODUCT)
    assert response.status_code == 201
    product = decimal_json(response)
    assert isinstance(product["id"], int) and product["id"] >= 1
    assert product["version"] == 1
    assert isinstance(product["position"], int) and product["position"] >= 1
    assert product["price"] == Decimal("120.00")
    for field in ("name", "description", "quantity", "sku"):
        assert product[field] == SEED_PRODUCT[field]
    assert response.headers["Location"] == f"/api/products/{product['id']}"
    assert response.headers["ETag"] == '"1"'


def test_description_is_optional(command_client):
    product = command_client.post("/api/products", json=without("description")).get_json()
    assert product["description"] == ""


# --- replace, patch, delete ------------------------------------------------------------------


def test_put_replaces_every_field(command_client):
    product = create(command_client)
    replacement = {"name": "Product B", "description": "new", "price": 99.5, "quantity": 7, "sku": "SKU-B"}
    response = command_client.put(f"/api/products/{product['id']}", json=replacement)
    assert response.status_code == 200
    updated = decimal_json(response)
    assert updated["version"] == 2 and updated["position"] > product["position"]
    assert updated["price"] == Decimal("99.50")
    for field in ("name", "description", "quantity", "sku"):
        assert updated[field] == replacement[field]


def test_patch_changes_only_the_named_fields(command_client):
    product = create(command_client)
    response = command_client.patch(f"/api/products/{product['id']}", json={"quantity": 10})
    assert response.status_code == 200
    updated = response.get_json()
    assert updated["quantity"] == 10 and updated["version"] == 2
    assert updated["name"] == SEED_PRODUCT["name"] and updated["sku"] == SEED_PRODUCT["sku"]
    assert response.headers["ETag"] == '"2"'


def test_delete_returns_json_with_the_deletion_version(command_client, write_engine):
    product = create(command_client)
    response = command_client.delete(f"/api/products/{product['id']}")
    assert response.status_code == 200 and response.is_json
    result = response.get_json()
    assert result["id"] == product["id"] and result["deleted"] is True
    assert result["version"] == 2 and result["position"] > product["position"]
    assert product_row(write_engine, product["id"]) is None
    assert_error(command_client.delete(f"/api/products/{product['id']}"), 404, "not_found")


@pytest.mark.parametrize("product_id", [999_999, 0, 2**63, 2**70])
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_unknown_id_is_404(command_client, method, product_id):
    send = getattr(command_client, method)
    kwargs = {} if method == "delete" else {"json": SEED_PRODUCT}
    assert_error(send(f"/api/products/{product_id}", **kwargs), 404, "not_found")


# --- optimistic concurrency ------------------------------------------------------------------


@pytest.mark.parametrize("if_match", ["1", '"1"', "*", '"7", "1"', 'W/"1", "1"', ' "1" '])
def test_if_match_with_current_version_succeeds(command_client, if_match):
    product = create(command_client)
    response = command_client.patch(
        f"/api/products/{product['id']}", json={"quantity": 4}, headers={"If-Match": if_match}
    )
    assert response.status_code == 200
    assert response.get_json()["version"] == 2


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_stale_if_match_is_412_with_current_version(command_client, method):
    product = create(command_client)
    command_client.patch(f"/api/products/{product['id']}", json={"quantity": 4})
    kwargs = {} if method == "delete" else {"json": SEED_PRODUCT}
    response = getattr(command_client, method)(f"/api/products/{product['id']}", headers={"If-Match": '"1"'}, **kwargs)
    payload = assert_error(response, 412, "version_mismatch")
    assert payload["current_version"] == 2


@pytest.mark.parametrize("if_match", ['W/"1"', '"one"', '"01"', '"2", "3"', "0", '"\u00b9"'])
def test_if_match_naming_no_current_version_is_412(command_client, write_engine, if_match):
    """RFC 9110 strong comparison: a weak tag, or any tag but "1", does not match version 1."""
    product = create(command_client)
    response = command_client.delete(f"/api/products/{product['id']}", headers={"If-Match": if_match})
    assert assert_error(response, 412, "version_mismatch")["current_version"] == 1
    assert product_row(write_engine, product["id"]) is not None


@pytest.mark.parametrize("if_match", ["abc", "-1", "1.0", "12345678901", '"1" "2"', "", "W/", '"', '*, "1"'])
def test_malformed_if_match_is_400(command_client, write_engine, if_match):
    product = create(command_client)
    response = command_client.delete(f"/api/products/{product['id']}", headers={"If-Match": if_match})
    assert "If-Match" in assert_error(response, 400, "invalid_parameter")["fields"]
    assert product_row(write_engine, product["id"]) is not None


@pytest.mark.parametrize("if_match", ["\u00b2"])
def test_non_ascii_digit_if_match_is_400(command_client, if_match):
    product = create(command_client)
    response = command_client.delete(f"/api/products/{product['id']}", headers={"If-Match": if_match})
    assert_error(response, 400, "invalid_parameter")


# --- malformed requests ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ['{"name": ', "not json", "", '{"name": "a",}', "[1, 2"])
def test_malformed_json_is_400(command_client, text):
    assert_error(send_raw(command_client, "POST", "/api/products", text), 400, "malformed_json")


def test_invalid_utf8_is_400(command_client):
    response = command_client.post("/api/products", data=b'{"name": "\xff"}', content_type="application/json")
    assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_415(command_client, content_type):
    response = command_client.post("/api/products", data=json.dumps(SEED_PRODUCT), content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_patch_with_non_json_content_type_is_415(command_client):
    product = create(command_client)
    response = command_client.patch(f"/api/products/{product['id']}", data="quantity=1", content_type="text/plain")
    assert_error(response, 415)


def test_body_over_64_kib_is_413(command_client):
    big = body(description="x" * (65 * 1024))
    assert_error(command_client.post("/api/products", json=big), 413)


# --- validation: 422 with a message per field ------------------------------------------------


@pytest.mark.parametrize(
    "payload, field",
    [
        (without("name"), "name"),
        (without("price"), "price"),
        (without("quantity"), "quantity"),
        (without("sku"), "sku"),
        (body(name="n" * 101), "name"),
        (body(name=""), "name"),
        (body(name="   "), "name"),
        (body(name="bad\x00name"), "name"),
        (body(description="bad\x00"), "description"),
        (body(description="d" * 2001), "description"),
        (body(price=-1), "price"),
        (body(price=Decimal("1.234")), "price"),
        (body(price="12.00"), "price"),
        (body(price=None), "price"),
        (body(price=True), "price"),
        (body(price=Decimal("10000000000.00")), "price"),
        (body(quantity=-1), "quantity"),
        (body(quantity=Decimal("1.5")), "quantity"),
        (body(quantity=True), "quantity"),
        (body(quantity="3"), "quantity"),
        (body(quantity=2**31), "quantity"),
        (body(sku=""), "sku"),
        (body(sku="s" * 65), "sku"),
        (body(colour="red"), "colour"),
    ],
    ids=lambda value: None if isinstance(value, dict) else value,
)
def test_invalid_field_is_422_naming_it(command_client, payload, field):
    assert_invalid(command_client.post("/api/products", json=payload), field)


def test_invalid_body_names_every_bad_field(command_client):
    fields = assert_invalid(
        command_client.post("/api/products", json={"price": "x", "quantity": -1, "extra": 1}),
        "name", "price", "quantity", "sku", "extra",
    )
    assert fields["price"] == "must be a JSON number"


def test_nul_in_name_is_a_field_error_not_500(command_client):
    fields = assert_invalid(command_client.post("/api/products", json=body(name="a\x00b")), "name")
    assert "NUL" in fields["name"]


def test_json_array_body_is_422(command_client):
    assert_invalid(command_client.post("/api/products", json=[SEED_PRODUCT]), "body")


@pytest.mark.parametrize("text", ["123", '"text"', "null"])
def test_json_scalar_body_is_422(command_client, text):
    assert_invalid(send_raw(command_client, "POST", "/api/products", text), "body")


def test_put_with_partial_body_is_422(command_client):
    product = create(command_client)
    assert_invalid(command_client.put(f"/api/products/{product['id']}", json={"quantity": 1}), "name", "sku")


@pytest.mark.parametrize("patch", [{}, {"name": None}, {"price": None}, {"sku": None, "quantity": 2}])
def test_empty_or_null_patch_is_422(command_client, patch):
    product = create(command_client)
    assert_error(command_client.patch(f"/api/products/{product['id']}", json=patch), 422, "validation_failed")


@pytest.mark.parametrize("patch, field", [({"quantity": -5}, "quantity"), ({"colour": "red"}, "colour")])
def test_invalid_patch_field_is_422(command_client, patch, field):
    product = create(command_client)
    assert_invalid(command_client.patch(f"/api/products/{product['id']}", json=patch), field)


# --- duplicate sku ---------------------------------------------------------------------------


def test_duplicate_sku_on_create_is_409(command_client):
    create(command_client)
    payload = assert_error(command_client.post("/api/products", json=body(name="Other")), 409, "duplicate_sku")
    assert payload["sku"] == SEED_PRODUCT["sku"]


def test_sku_is_trimmed_before_the_duplicate_check(command_client):
    create(command_client)
    response = command_client.post("/api/products", json=body(sku=f"  {SEED_PRODUCT['sku']} "))
    assert_error(response, 409, "duplicate_sku")


def test_patch_taking_another_products_sku_is_409(command_client, write_engine):
    first = create(command_client)
    second = create(command_client, sku="SKU-OTHER")
    response = command_client.patch(f"/api/products/{second['id']}", json={"sku": first["sku"]})
    assert_error(response, 409, "duplicate_sku")
    assert product_row(write_engine, second["id"]).sku == "SKU-OTHER"


def test_put_keeping_its_own_sku_is_fine(command_client):
    product = create(command_client)
    response = command_client.put(f"/api/products/{product['id']}", json=body(quantity=1))
    assert response.status_code == 200


def test_sku_is_free_again_after_delete(command_client):
    product = create(command_client)
    command_client.delete(f"/api/products/{product['id']}")
    assert create(command_client)["id"] != product["id"]


# --- the outbox ------------------------------------------------------------------------------


def test_each_command_commits_one_outbox_row_with_its_version(command_client, write_engine):
    created = create(command_client)
    url = f"/api/products/{created['id']}"
    replaced = command_client.put(url, json=body(price=Decimal("19.99"))).get_json()
    patched = command_client.patch(url, json={"name": "Renamed"}).get_json()
    deleted = command_client.delete(url).get_json()

    rows = outbox_rows(write_engine)
    results = [created, replaced, patched, deleted]
    assert [row.type for row in rows] == ["product.created", "product.updated", "product.updated", "product.deleted"]
    assert [row.aggregate_version for row in rows] == [result["version"] for result in results] == [1, 2, 3, 4]
    assert [row.position for row in rows] == [result["position"] for result in results]
    assert {(row.aggregate_type, row.aggregate_id) for row in rows} == {("product", created["id"])}


def test_outbox_payload_carries_the_product_state(command_client, write_engine):
    create(command_client)
    [row] = outbox_rows(write_engine)
    assert row.payload == {
        "name": "Product A",
        "description": "Product Test",
        "price": "120.00",
        "quantity": 3,
        "sku": "SKU-DEMO-0024",
    }


def test_patch_event_payload_is_the_full_new_state(command_client, write_engine):
    product = create(command_client)
    command_client.patch(f"/api/products/{product['id']}", json={"price": Decimal("0.10")})
    payload = outbox_rows(write_engine)[-1].payload
    assert payload["price"] == "0.10"
    assert payload["name"] == "Product A" and payload["quantity"] == 3 and payload["sku"] == "SKU-DEMO-0024"


def _failed_commands(client, product_id: int):
    url = f"/api/products/{product_id}"
    return [
        (client.post("/api/products", json=SEED_PRODUCT), 409),
        (client.patch(url, json={"quantity": 9}, headers={"If-Match": '"7"'}), 412),
        (client.put(url, json=body(price=-1)), 422),
        (client.patch(url, json={}), 422),
        (client.delete(url, headers={"If-Match": "nope"}), 400),
        (client.delete("/api/products/424242"), 404),
        (client.post("/api/products", data="{", content_type="application/json"), 400),
    ]


def test_failed_commands_leave_no_outbox_row_and_no_change(command_client, write_engine):
    product = create(command_client)
    before = outbox_rows(write_engine)
    for response, status in _failed_commands(command_client, product["id"]):
        assert_error(response, status)
    assert outbox_rows(write_engine) == before
    row = product_row(write_engine, product["id"])
    assert row.version == 1 and row.quantity == 3


# --- money -----------------------------------------------------------------------------------


def test_ten_cents_is_stored_and_returned_as_0_10(command_client, write_engine):
    text = json.dumps(body(price="PRICE")).replace('"PRICE"', "0.10")
    response = send_raw(command_client, "POST", "/api/products", text)
    assert response.status_code == 201
    assert str(decimal_json(response)["price"]) == "0.10"
    assert product_row(write_engine, response.get_json()["id"]).price == Decimal("0.10")


@pytest.mark.parametrize("price", ["19.99", "0.01", "9999999999.99", "1e2", "12.5"])
def test_price_round_trips_exactly(command_client, price):
    text = json.dumps(body(price="PRICE")).replace('"PRICE"', price)
    response = send_raw(command_client, "POST", "/api/products", text)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert decimal_json(response)["price"] == Decimal(price)


def test_19_99_is_written_as_19_99_in_the_response_text(command_client):
    text = json.dumps(body(price="PRICE")).replace('"PRICE"', "19.99")
    response = send_raw(command_client, "POST", "/api/products", text)
    assert re.search(r'"price":\s*19\.99[,}\s]', response.get_data(as_text=True))


# --- health and openapi ----------------------------------------------------------------------


def test_health_is_ok(command_client):
    response = command_client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok" and response.get_json()["service"] == "command"


def test_openapi_documents_the_routes(command_client):
    document = command_client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3")
    assert set(document["paths"]["/api/products"]) >= {"post"}
    assert set(document["paths"]["/api/products/{product_id}"]) >= {"put", "patch", "delete"}


def test_unknown_route_and_method_are_json_errors(command_client):
    assert_error(command_client.get("/api/nothing"), 404)
    response = command_client.get("/api/products")
    assert_error(response, 405)
    assert "POST" in response.headers["Allow"]
