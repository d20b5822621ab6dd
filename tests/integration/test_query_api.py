"""The query service over HTTP, fed by the real pipeline: commands in, read-model answers out.

Every test writes through the command service, then waits for the read model with
`min_version` (read-your-writes), never with a sleep.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from cqrs_demo.polling import wait_until
from cqrs_demo.read.app import create_app as create_query_app

pytestmark = pytest.mark.usefixtures("pipeline")


# --- helpers ---------------------------------------------------------------------------------


def write(command_client, name: str, price="10.00", quantity: int = 1, sku: str | None = None) -> dict:
    body = {"name": name, "description": "", "price": Decimal(price), "quantity": quantity, "sku": sku or name}
    response = command_client.post("/api/products", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def read(query_client, product: dict):
    """GET one product, waiting until the read model has at least the version the command returned."""
    return query_client.get(f"/api/products/{product['id']}", query_string={"min_version": product["version"]})


def settled(query_client, command_client, *products: tuple) -> list[dict]:
    """Write (name, price, quantity) products and wait until the read model has them all."""
    written = [write(command_client, name, price, quantity) for name, price, quantity in products]
    for product in written:
        assert read(query_client, product).status_code == 200
    return written


def listing(query_client, **params) -> list[dict]:
    response = query_client.get("/api/products", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def names(query_client, **params) -> list[str]:
    return [product["name"] for product in listing(query_client, **params)]


def assert_error(response, status: int, error: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    payload = response.get_json()
    assert isinstance(payload["error"], str) and isinstance(payload["message"], str)
    if error is not None:
        assert payload["error"] == error
    return payload


def assert_bad_parameter(response, name: str | None = None) -> dict:
    payload = assert_error(response, 400, "invalid_parameter")
    if name is not None:
        assert name in payload["fields"], payload
        assert name in payload["message"]
    return payload


CATALOGUE = (
    ("Apple", "5.00", 0),
    ("Banana", "20.00", 4),
    ("Cherry", "10.00", 2),
    ("Damson", "0.10", 0),
    ("Elderberry", "19.99", 9),
)


@pytest.fixture
def catalogue(command_client, query_client) -> list[dict]:
    return settled(query_client, command_client, *CATALOGUE)


# --- the list --------------------------------------------------------------------------------


def test_list_is_a_json_array_with_total_count(query_client, catalogue):
    response = query_client.get("/api/products")
    assert response.status_code == 200
    assert isinstance(response.get_json(), list)
    assert response.headers["X-Total-Count"] == "5"
    assert [product["id"] for product in response.get_json()] == [product["id"] for product in catalogue]


def test_list_carries_exact_prices_and_versions(query_client, catalogue):
    response = query_client.get("/api/products", query_string={"q": "elder"})
    [product] = json.loads(response.get_data(as_text=True), parse_float=Decimal)
    assert product["price"] == Decimal("19.99") and product["version"] == 1
    assert product["sku"] == "Elderberry" and product["quantity"] == 9


def test_limit_and_offset_page_through_the_list(query_client, catalogue):
    response = query_client.get("/api/products", query_string={"limit": 2, "offset": 2})
    assert [product["name"] for product in response.get_json()] == ["Cherry", "Damson"]
    assert response.headers["X-Total-Count"] == "5"
    assert names(query_client, limit=2, offset=4) == ["Elderberry"]
    assert names(query_client, offset=5) == []


@pytest.mark.parametrize("q, expected", [("err", ["Cherry", "Elderberry"]), ("BAN", ["Banana"]), ("zzz", [])])
def test_q_is_a_case_insensitive_contains(query_client, catalogue, q, expected):
    assert names(query_client, q=q) == expected


def test_q_total_count_counts_matches_not_the_page(query_client, catalogue):
    response = query_client.get("/api/products", query_string={"q": "e", "limit": 1})
    assert len(response.get_json()) == 1
    assert response.headers["X-Total-Count"] == "3"  # Apple, Cherry, Elderberry


def test_q_matches_regex_metacharacters_literally(query_client, command_client):
    settled(query_client, command_client, ("A.*B", "1.00", 1), ("AxxB", "1.00", 1), ("(x)|[y]", "1.00", 1))
    assert names(query_client, q=".*") == ["A.*B"]
    assert names(query_client, q="A.") == ["A.*B"]
    assert names(query_client, q="(x)|[y]") == ["(x)|[y]"]
    assert names(query_client, q="^A") == []


def test_price_range(query_client, catalogue):
    assert names(query_client, min_price="10") == ["Banana", "Cherry", "Elderberry"]
    assert names(query_client, max_price="0.10") == ["Damson"]
    assert names(query_client, min_price="5.00", max_price="19.99") == ["Apple", "Cherry", "Elderberry"]
    assert names(query_client, min_price="19.98", max_price="19.99") == ["Elderberry"]


@pytest.mark.parametrize("in_stock, expected", [("true", ["Banana", "Cherry", "Elderberry"]), ("false", ["Apple", "Damson"])])
def test_in_stock(query_client, catalogue, in_stock, expected):
    assert names(query_client, in_stock=in_stock) == expected


def test_sort_by_price_descending_and_by_name(query_client, command_client):
    settled(query_client, command_client, ("Cherry", "10.00", 1), ("Apple", "20.00", 1), ("Banana", "5.00", 1))
    assert names(query_client, sort="-price") == ["Apple", "Cherry", "Banana"]
    assert names(query_client, sort="price") == ["Banana", "Cherry", "Apple"]
    assert names(query_client, sort="name") == ["Apple", "Banana", "Cherry"]
    assert names(query_client, sort="-name") == ["Cherry", "Banana", "Apple"]


def test_empty_list_has_zero_total(query_client):
    response = query_client.get("/api/products")
    assert response.get_json() == [] and response.headers["X-Total-Count"] == "0"


# --- one product and read-your-writes --------------------------------------------------------


def test_get_one_waits_for_min_version(query_client, command_client):
    product = write(command_client, "Widget", "120.00", 3)
    patched = command_client.patch(f"/api/products/{product['id']}", json={"quantity": 8}).get_json()
    response = read(query_client, patched)
    assert response.status_code == 200
    view = response.get_json()
    assert view["version"] >= 2 and view["quantity"] == 8 and view["id"] == product["id"]
    assert response.headers["ETag"] == f'"{view["version"]}"'


def test_min_version_not_reached_is_503(query_client, command_client, settings):
    product = settled(query_client, command_client, ("Widget", "1.00", 1))[0]
    app = create_query_app(settings.with_(read_wait_seconds=0.3))
    try:
        response = app.test_client().get(f"/api/products/{product['id']}", query_string={"min_version": 5})
    finally:
        app.extensions["cqrs"]["db"].client.close()
    payload = assert_error(response, 503, "read_model_behind")
    assert payload["read_model_version"] == 1 and payload["min_version"] == 5


def test_deleted_product_is_404_and_left_out_of_the_list(query_client, command_client):
    kept, gone = settled(query_client, command_client, ("Kept", "1.00", 1), ("Gone", "1.00", 1))
    deleted = command_client.delete(f"/api/products/{gone['id']}").get_json()
    assert_error(read(query_client, deleted), 404, "not_found")
    assert_error(query_client.get(f"/api/products/{gone['id']}"), 404, "not_found")
    response = query_client.get("/api/products")
    assert names(query_client) == ["Kept"] and response.headers["X-Total-Count"] == "1"


@pytest.mark.parametrize("product_id", [424242, 2**63, 2**70])
def test_unknown_product_is_404(query_client, product_id):
    assert_error(query_client.get(f"/api/products/{product_id}"), 404, "not_found")


@pytest.mark.parametrize("min_version", ["0", "-1", "abc", "1.5", str(2**31)])
def test_bad_min_version_is_400(query_client, min_version):
    response = query_client.get("/api/products/1", query_string={"min_version": min_version})
    assert_bad_parameter(response, "min_version")


# --- parameter validation --------------------------------------------------------------------


def test_unknown_parameter_is_400_naming_it(query_client):
    assert_bad_parameter(query_client.get("/api/products?colour=red"), "colour")


def test_unknown_parameter_on_get_one_is_400(query_client):
    assert_bad_parameter(query_client.get("/api/products/1?verbose=1"), "verbose")


def test_repeated_parameter_is_400(query_client):
    assert_bad_parameter(query_client.get("/api/products?limit=1&limit=2"), "limit")


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=abc", "limit=1001", "limit=-1", "offset=-1", "min_price=abc", "min_price=-1",
     "min_price=0.001", "max_price=NaN", "min_price=Infinity", "in_stock=maybe", "sort=colour", "q=" + "x" * 101],
)
def test_invalid_value_is_400_naming_the_parameter(query_client, query):
    assert_bad_parameter(query_client.get(f"/api/products?{query}"), query.split("=")[0])


# --- MongoDB operator injection --------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"q[$ne]": "x"},
        {"min_price[$gt]": "0"},
        {"in_stock[$exists]": "true"},
        {"sort": '{"$natural":1}'},
        {"sort": "$natural"},
        {"limit": '{"$gt":0}'},
        {"min_price": '{"$gt":0}'},
        {"in_stock": '{"$exists":true}'},
        {"$where": "1"},
    ],
)
def test_operator_injection_is_refused(query_client, catalogue, params):
    assert_bad_parameter(query_client.get("/api/products", query_string=params))


@pytest.mark.parametrize("q", ["$where", '{"$ne": null}', "$ne", "[$regex]", "this.price > 0"])
def test_operator_looking_q_is_matched_literally(query_client, catalogue, q):
    response = query_client.get("/api/products", query_string={"q": q})
    assert response.status_code == 200
    assert response.get_json() == [] and response.headers["X-Total-Count"] == "0"


def test_operator_text_in_a_name_is_found_literally(query_client, command_client):
    settled(query_client, command_client, ("Price $where", "1.00", 1), ("Plain", "1.00", 1))
    assert names(query_client, q="$where") == ["Price $where"]


# --- projection status, health, openapi ------------------------------------------------------


def test_projection_counts_the_applied_events(query_client, command_client):
    first, second = settled(query_client, command_client, ("One", "1.00", 1), ("Two", "2.00", 2))
    command_client.patch(f"/api/products/{first['id']}", json={"quantity": 5})
    deleted = command_client.delete(f"/api/products/{second['id']}").get_json()
    # The watermark reaches a position once every event up to it is applied; with nothing after
    # the marker, it stops exactly there, as does the highest position applied.
    marker = settled(query_client, command_client, ("Marker", "1.00", 1))[0]
    status = wait_until(
        lambda: (s := query_client.get("/api/projection").get_json())["watermark"] >= marker["position"]
        and s["oldest_unpublished_age_s"] == 0.0 and s,
        10, what="the watermark to reach the marker, and the relay to report nothing unpublished",
    )
    assert status["applied"] >= 4
    assert deleted["position"] < status["watermark"] == status["max_applied_position"] == marker["position"]
    assert status["queue_depth"] is not None
    assert {"duplicates", "gaps", "last_lag_ms", "updated_at", "relay_checked_at"} <= set(status)


def test_projection_takes_no_parameters(query_client):
    assert_bad_parameter(query_client.get("/api/projection?verbose=1"), "verbose")


def test_health_is_ok(query_client):
    response = query_client.get("/health")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok" and response.get_json()["service"] == "query"


def test_openapi_documents_the_routes(query_client):
    document = query_client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3")
    for path in ("/api/products", "/api/products/{product_id}", "/api/projection"):
        assert "get" in document["paths"][path], path


def test_query_service_refuses_writes_as_json(query_client):
    response = query_client.post("/api/products", json={"name": "x"})
    assert_error(response, 405)


def test_nul_in_text_parameters_is_refused(query_client):
    for params in ("q=%00", "q=a%00b"):
        response = query_client.get(f"/api/products?{params}")
        assert response.status_code == 400
        assert "q" in response.get_json()["fields"]
