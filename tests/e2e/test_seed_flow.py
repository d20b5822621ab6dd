"""The seed README's two requests, against the stack running as separate processes."""

import requests
from support import SEED_PRODUCT



def test_post_then_get_as_in_the_seed(stack):
    urls = stack.urls()
    created = requests.post(f"{urls['command']}/api/products", json=SEED_PRODUCT, timeout=5)
    assert created.status_code == 201
    product = created.json()
    assert isinstance(product["id"], int) and product["version"] == 1 and product["position"] >= 1

    one = requests.get(f"{urls['query']}/api/products/{product['id']}", params={"min_version": 1}, timeout=5)
    assert one.status_code == 200
    listed = requests.get(f"{urls['query']}/api/products", timeout=5)
    assert listed.status_code == 200
    assert isinstance(listed.json(), list)
    [read] = listed.json()
    for field, value in SEED_PRODUCT.items():
        assert read[field] == value, field
    assert read["id"] == product["id"] and read["version"] == 1


def test_every_process_is_healthy_and_listed(stack):
    rows = {row["service"]: row for row in stack.status()}
    assert set(rows) >= {"command", "query", "relay", "projector"}
    assert all(row["healthy"] for row in rows.values())
