"""The load generator's HTTP transport: one kept-alive connection, a new one when the server closed it."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cqrs_demo.lab.client import KeepAliveTransport, WorkbenchClient


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a response says otherwise
    connections: set[int] = set()

    def do_PATCH(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer({"path": self.path, "body": body.decode(), "if_match": self.headers.get("If-Match")})

    def do_GET(self) -> None:
        close = "close" in self.path
        self._answer({"path": self.path, "price": 10.10}, close=close)

    def _answer(self, payload: dict, close: bool = False) -> None:
        type(self).connections.add(self.client_address[1])
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        if close:
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    _Echo.connections = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_requests_share_one_connection_and_money_stays_exact(server):
    client = WorkbenchClient(server, server, transport=KeepAliveTransport(), keep_history=False)
    patched = client.update_product(7, if_match=3, price="19.99")
    assert patched.status == 200 and patched.headers["content-type"] == "application/json"
    assert patched.body["path"] == "/api/products/7" and patched.body["if_match"] == '"3"'
    assert patched.body["body"] == '{"price": 19.99}'
    read = client.product(7, min_version=4)
    assert read.body == {"path": "/api/products/7?min_version=4", "price": Decimal("10.10")}
    assert read.url.endswith("/api/products/7?min_version=4")
    assert len(_Echo.connections) == 1 and client.history == []


def test_a_connection_the_server_closed_is_replaced_before_the_next_request(server):
    client = WorkbenchClient(server, server, transport=KeepAliveTransport())
    assert client.send("GET", f"{server}/close").status == 200
    assert client.product(1).status == 200
    assert len(_Echo.connections) == 2 and len(client.history) == 2
