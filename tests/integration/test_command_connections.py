"""The command service's database connections under concurrent requests."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from cqrs_demo import web
from support import SEED_PRODUCT

WAVES = 5


def test_bursts_of_commands_reuse_connections_instead_of_opening_one_each(command_client):
    app = command_client.application
    opened = []
    sa.event.listen(app.extensions["cqrs"]["engine"].pool, "connect", lambda dbapi_connection, record: opened.append(record))
    product = command_client.post("/api/products", json=SEED_PRODUCT).get_json()
    start = threading.Barrier(web.REQUEST_THREADS)

    def update(n: int) -> int:
        start.wait()  # a burst: every server thread busy at once, then none
        # One product for all: each request waits for its row lock holding a connection.
        return app.test_client().patch(f"/api/products/{product['id']}", json={"quantity": n}).status_code

    with ThreadPoolExecutor(web.REQUEST_THREADS) as pool:
        for _ in range(WAVES):
            statuses = list(pool.map(update, range(web.REQUEST_THREADS)))
            assert statuses == [200] * web.REQUEST_THREADS
    assert len(opened) <= web.REQUEST_THREADS
