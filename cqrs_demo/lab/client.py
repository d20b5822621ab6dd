"""Plain-method access to both services, recording every HTTP exchange for display.

Every widget action is one of these methods, so a notebook can run the same action headless
(under nbval) that a student runs by clicking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

import requests
import simplejson

from cqrs_demo.etags import etag


@dataclass
class Exchange:
    """One request and its response, as they went over the wire."""

    method: str
    url: str
    request_body: Any
    status: int
    body: Any
    headers: Mapping[str, str]  # case-insensitive, as HTTP header names are
    elapsed_ms: float
    sent_at: float = field(default=0.0)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __str__(self) -> str:
        lines = [f"{self.method} {self.url}"]
        if self.request_body is not None:
            lines.append(simplejson.dumps(self.request_body, indent=2, use_decimal=True, default=str))
        lines.append(f"-> {self.status} in {self.elapsed_ms:.1f} ms")
        lines.append(simplejson.dumps(self.body, indent=2, use_decimal=True, default=str))
        return "\n".join(lines)


def money(value: Any) -> Any:
    """Prices go out as exact JSON numbers: "9.99" and 9.99 both become Decimal("9.99")."""
    if isinstance(value, (str, float)):
        try:
            return Decimal(str(value).strip())
        except ArithmeticError:
            return value  # not a number: sent as given, so the service's own error shows
    return value


def _if_match(version: int | None) -> dict[str, str] | None:
    """The change applies only to this version: its entity tag, quoted as the ETag header gives it."""
    return {"If-Match": etag(version)} if version is not None else None


class WorkbenchClient:
    """Commands to the command service and queries to the query service of one stack."""

    def __init__(self, command_url: str, query_url: str, timeout: float = 10.0) -> None:
        self.command_url = command_url.rstrip("/")
        self.query_url = query_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.history: list[Exchange] = []

    @classmethod
    def for_stack(cls, stack) -> "WorkbenchClient":
        return cls(stack.command_url, stack.query_url)

    def send(self, method: str, url: str, body: Any = None, headers: dict | None = None, params=None) -> Exchange:
        sent_at = time.time()
        started = time.perf_counter()
        response = self.session.request(
            method, url, json=body, headers=headers, params=params, timeout=self.timeout
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            payload = response.json(parse_float=Decimal)
        except ValueError:
            payload = response.text
        exchange = Exchange(
            method, response.url, body, response.status_code, payload, response.headers, elapsed_ms, sent_at
        )
        self.history.append(exchange)
        return exchange

    # -- commands ----------------------------------------------------------------------------

    def create_product(self, name: str, price, quantity: int, sku: str, description: str = "") -> Exchange:
        body = {"name": name, "description": description, "price": money(price), "quantity": quantity, "sku": sku}
        return self.send("POST", f"{self.command_url}/api/products", body)

    def update_product(self, product_id: int, if_match: int | None = None, **changes) -> Exchange:
        headers = _if_match(if_match)
        if "price" in changes:
            changes["price"] = money(changes["price"])
        return self.send("PATCH", f"{self.command_url}/api/products/{product_id}", changes, headers)

    def replace_product(self, product_id: int, fields: dict, if_match: int | None = None) -> Exchange:
        headers = _if_match(if_match)
        return self.send("PUT", f"{self.command_url}/api/products/{product_id}", fields, headers)

    def delete_product(self, product_id: int, if_match: int | None = None) -> Exchange:
        headers = _if_match(if_match)
        return self.send("DELETE", f"{self.command_url}/api/products/{product_id}", None, headers)

    def place_order(self, customer: str, lines: list[dict]) -> Exchange:
        return self.send("POST", f"{self.command_url}/api/orders", {"customer": customer, "lines": lines})

    def cancel_order(self, order_id: int) -> Exchange:
        return self.send("POST", f"{self.command_url}/api/orders/{order_id}/cancel")

    # -- queries -----------------------------------------------------------------------------

    def product(self, product_id: int, min_version: int | None = None) -> Exchange:
        params = {"min_version": min_version} if min_version else None
        return self.send("GET", f"{self.query_url}/api/products/{product_id}", params=params)

    def products(self, **params) -> Exchange:
        return self.send("GET", f"{self.query_url}/api/products", params=params or None)

    def order(self, order_id: int, min_version: int | None = None) -> Exchange:
        params = {"min_version": min_version} if min_version else None
        return self.send("GET", f"{self.query_url}/api/orders/{order_id}", params=params)

    def orders(self, **params) -> Exchange:
        return self.send("GET", f"{self.query_url}/api/orders", params=params or None)

    def top_products(self, limit: int = 10) -> Exchange:
        return self.send("GET", f"{self.query_url}/api/stats/top-products", params={"limit": limit})

    def projection(self) -> Exchange:
        return self.send("GET", f"{self.query_url}/api/projection")
