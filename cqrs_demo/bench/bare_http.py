"""The bare HTTP request: what one costs before a service does anything.

A Flask endpoint on waitress (the services' server, with their thread count) answers a small
JSON document; the load generator's own client calls it at a steady rate over one kept-alive
connection. Its CPU per request, server and client, is the part of the floor under a command
that the bare pipeline leaves out: a command is two requests, the write and the read of it.
The server runs as `python -m cqrs_demo.bench.bare_http PORT`.
"""

from __future__ import annotations

import sys
import time

import psutil
from flask import Flask, jsonify

from cqrs_demo import config, web
from cqrs_demo.bench.process_cost import measure_while, tree
from cqrs_demo.lab.client import KeepAliveTransport
from cqrs_demo.polling import wait_until
from cqrs_demo.runtime import processes
from cqrs_demo.runtime.ports import free_port


def create_app() -> Flask:
    app = Flask(__name__)

    @app.get("/api/products/<int:product_id>")
    def product(product_id: int):
        return jsonify(id=product_id, name="Bare product", price="10.00", quantity=1, version=1)

    return app


def measure(rate: float, seconds: float) -> dict:
    """Requests at `rate` for `seconds`: CPU ms per request of the server and of the client."""
    port = free_port()
    log_path = config.from_environment().run_dir / "bench_bare" / "http.log"
    server = processes.start("bare-http", [sys.executable, "-m", "cqrs_demo.bench.bare_http", str(port)], log_path)
    client, url = KeepAliveTransport(), f"http://127.0.0.1:{port}/api/products/1"
    requests = int(rate * seconds)

    def answers() -> bool:
        if not server.alive():
            raise RuntimeError(f"the bare HTTP server exited; see {log_path}")
        try:
            return client.request("GET", url).status_code == 200
        except OSError:
            return False

    def send() -> None:
        start = time.monotonic()
        for number in range(requests):
            time.sleep(max(0.0, start + number / rate - time.monotonic()))
            client.request("GET", url)

    try:
        wait_until(answers, 20, interval=0.1, what="the bare HTTP server")
        footprints, _ = measure_while({"server": lambda: tree(server.pid), "client": lambda: [psutil.Process()]}, send)
    finally:
        server.stop()
    per_request = {name: round(f.cpu_seconds * 1000 / requests, 3) for name, f in footprints.items()}
    return {"rate": rate, "requests": requests, "cpu_ms_per_request": per_request,
            "total_cpu_ms_per_request": round(sum(per_request.values()), 3)}


if __name__ == "__main__":
    import waitress

    waitress.serve(create_app(), host="127.0.0.1", port=int(sys.argv[1]), threads=web.REQUEST_THREADS, _quiet=True)
