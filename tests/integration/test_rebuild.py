"""A rebuild never takes the read model down: it builds the next generation beside the live one.

Against the real servers, with the relay and the projector running: reads of existing products
go on in a loop while a rebuild replays a few hundred events, and none may fail; commands
written during the rebuild are in the model it switches to; a malformed event in the log stops
the rebuild (the CLI exits 1 naming its position) and leaves the live model as it was.
"""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.read import generations, projection
from cqrs_demo.read.rebuild import rebuild
from cqrs_demo.runtime.processes import child_environment
from cqrs_demo.write.schema import outbox
from support import SEED_PRODUCT

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("pipeline")]

PRODUCTS = 100  # each created, then changed twice: 300 events to replay


def catalogue(command_client, count: int = PRODUCTS) -> list[dict]:
    created = []
    for n in range(count):
        response = command_client.post("/api/products", json={**SEED_PRODUCT, "sku": f"SKU-RB-{n}", "quantity": 50})
        assert response.status_code == 201, response.get_json()
        created.append(response.get_json())
    for product in created:
        for price in (11, 12):
            response = command_client.patch(f"/api/products/{product['id']}", json={"price": price})
            assert response.status_code == 200, response.get_json()
    return created


def settled(write_engine, read_db) -> None:
    result = wait_until_equal(write_engine, read_db, 60)
    assert result["equal"], result["differences"][:5]


class Readers:
    """Reads every product, round and round, from a thread; keeps every answer that was not a 200."""

    def __init__(self, query_client, ids: list[int]) -> None:
        self.client, self.ids = query_client, ids
        self.reads, self.failures = 0, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="readers", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for product_id in self.ids:
                response = self.client.get(f"/api/products/{product_id}")
                self.reads += 1
                if response.status_code != 200:
                    self.failures.append((product_id, response.status_code, response.get_json()))
                if self.stop.is_set():
                    return

    def __enter__(self) -> "Readers":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(30)


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cqrs_demo", *args], env=child_environment(settings),
                          capture_output=True, text=True, timeout=180)


def test_no_read_fails_during_a_rebuild_and_writes_made_meanwhile_are_kept(
    settings, command_client, query_client, write_engine, read_db
):
    products = catalogue(command_client)
    settled(write_engine, read_db)
    ids = [p["id"] for p in products]
    written: dict[int, int] = {}

    def write_meanwhile() -> None:
        for product_id in ids[:20]:
            response = command_client.patch(f"/api/products/{product_id}", json={"quantity": 7})
            assert response.status_code == 200, response.get_json()
            written[product_id] = response.get_json()["version"]

    writer = threading.Thread(target=write_meanwhile, name="writer", daemon=True)
    with Readers(query_client, ids) as readers:
        writer.start()
        counts = rebuild(write_engine, read_db)
        writer.join(60)
        reads_during_rebuild = readers.reads

    assert readers.failures == [], f"{len(readers.failures)} of {readers.reads} reads failed: {readers.failures[:3]}"
    assert reads_during_rebuild > len(ids)
    assert counts.get("applied", 0) + counts.get("duplicate", 0) >= 3 * PRODUCTS
    assert generations.pointer(read_db) == generations.Pointer(live=1, building=None)
    assert projection.PRODUCTS not in read_db.list_collection_names()  # generation 0, dropped after the grace
    for product_id, version in written.items():
        response = query_client.get(f"/api/products/{product_id}?min_version={version}")
        assert response.status_code == 200 and response.get_json()["quantity"] == 7, response.get_json()
    settled(write_engine, read_db)
    check = cli(settings, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    status = query_client.get("/api/projection").get_json()
    assert status["generation"] == 1 and status["rebuild"] is None
    assert status["last_rebuild"]["state"] == "switched" and status["last_rebuild"]["generation"] == 1


def test_a_malformed_event_stops_the_rebuild_and_leaves_the_live_model_untouched(
    settings, command_client, query_client, write_engine, read_db
):
    products = catalogue(command_client, 40)
    settled(write_engine, read_db)
    with write_engine.connect() as conn:
        positions = list(conn.scalars(sa.select(outbox.c.position).order_by(outbox.c.position)))
    poisoned = positions[len(positions) // 2]
    with write_engine.begin() as conn:  # an event the live projector applied long ago, unreadable now
        conn.execute(outbox.update().where(outbox.c.position == poisoned).values(payload={"price": "not money"}))
    live_before = sorted(read_db[projection.PRODUCTS].find({}, {"_id": 1, "version": 1}), key=lambda d: d["_id"])

    with Readers(query_client, [p["id"] for p in products]) as readers:
        result = cli(settings, "rebuild")

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"position {poisoned}" in result.stderr and "untouched" in result.stderr, result.stderr
    assert readers.failures == [] and readers.reads > 0
    assert generations.pointer(read_db) == generations.Pointer(live=0, building=None)
    assert sorted(read_db[projection.PRODUCTS].find({}, {"_id": 1, "version": 1}), key=lambda d: d["_id"]) == live_before
    assert not [name for name in read_db.list_collection_names() if name.endswith("_g1")]
    last = query_client.get("/api/projection").get_json()["last_rebuild"]
    assert last["state"] == "failed" and last["failed_position"] == poisoned, last
