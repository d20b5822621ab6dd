"""Plain-method access to both services, recording every HTTP exchange for display.

Every widget action is one of these methods, so a notebook can run the same action headless
(under nbval) that a student runs by clicking.
"""

from __future__ import annotations

import http.client
import select
import time
import urllib.parse
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

import requests
import simplejson
from requests.structures import CaseInsensitiveDict

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


class _Reply:
    """What `send` needs of a response, whichever transport fetched it."""

    def __init__(self, url: str, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.url, self.status_code, self.headers, self.content = url, status_code, headers, content

    def json(self, **kwargs) -> Any:
        return simplejson.loads(self.content, **kwargs)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")


class KeepAliveTransport:
    """Requests over one kept-alive `http.client` connection per host: for load generators, which
    send thousands of small requests from one thread each and should cost the machine little."""

    def __init__(self) -> None:
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def request(self, method: str, url: str, json: Any = None, headers: dict | None = None, params=None,
                timeout: float = 10.0) -> _Reply:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + (f"?{urllib.parse.urlencode(params)}" if params else "")
        body = None if json is None else simplejson.dumps(json, use_decimal=True).encode()
        sent_headers = {"Content-Type": "application/json", **(headers or {})} if body is not None else headers or {}
        connection = self._connection(parts.netloc, timeout)
        try:
            connection.request(method, target, body, sent_headers)
            response = connection.getresponse()
            content = response.read()
        except Exception:
            connection.close()
            del self._connections[parts.netloc]
            raise
        return _Reply(f"{parts.scheme}://{parts.netloc}{target}", response.status,
                      CaseInsensitiveDict(response.getheaders()), content)

    def _connection(self, netloc: str, timeout: float) -> http.client.HTTPConnection:
        """The host's kept-alive connection; a new one if the server has closed it meanwhile
        (found before sending, as urllib3 does: a request is never sent twice)."""
        connection = self._connections.get(netloc)
        if connection is not None and connection.sock is not None:
            readable, _, _ = select.select([connection.sock], [], [], 0)
            if readable:  # idle, yet readable: the server's end is closed
                connection.close()
                connection = None
        if connection is None:
            connection = self._connections[netloc] = http.client.HTTPConnection(netloc, timeout=timeout)
        return connection


class WorkbenchClient:
    """Commands to the command service and queries to the query service of one stack.

    Requests go through a `requests.Session` unless another `transport` (an object with the
    session's `request` method, as `KeepAliveTransport`) is given; `keep_history=False` keeps
    no record of the exchanges (a load generator's thousands of them)."""

    def __init__(self, command_url: str, query_url: str, timeout: float = 10.0, transport=None,
                 keep_history: bool = True) -> None:
        self.command_url = command_url.rstrip("/")
        self.query_url = query_url.rstrip("/")
        self.timeout = timeout
        self.session = transport or requests.Session()
        self.keep_history = keep_history
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
        if self.keep_history:
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
