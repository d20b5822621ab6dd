"""Reads during a rebuild: how many reads of existing products fail while the read model is rebuilt.

A stack of its own, 100 products each changed twice (300 events), readers fetching every product
from the query service round and round over HTTP, and one `rebuild` meanwhile. Prints the reads
made during the rebuild, the ones that did not answer 200, and how long the rebuild took.

    CQRS_STUDENT=me python -m cqrs_demo.bench.rebuild_reads [--readers 2]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import requests

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.read.rebuild import rebuild

PRODUCTS = 100


def _catalogue(client: WorkbenchClient) -> list[int]:
    tag = f"{time.time_ns():x}"
    ids = [client.create_product(f"Rebuilt {n}", "9.99", 10, f"RB-{tag}-{n}").body["id"] for n in range(PRODUCTS)]
    for product_id in ids:
        for price in ("10.50", "11.50"):
            assert client.update_product(product_id, price=price).ok
    return ids


def measure(readers: int = 2) -> dict:
    stack = LabStack(namespace="bench_rebuild_reads").start()
    try:
        ids = _catalogue(WorkbenchClient.for_stack(stack))
        assert wait_until_equal(stack.engine, stack.read_db, 60)["equal"]
        stop, lock = threading.Event(), threading.Lock()
        tally = {"reads": 0, "failed": 0, "statuses": {}}

        def read_round_and_round() -> None:
            session = requests.Session()
            while not stop.is_set():
                for product_id in ids:
                    status = session.get(f"{stack.query_url}/api/products/{product_id}", timeout=10).status_code
                    with lock:
                        tally["reads"] += 1
                        if status != 200:
                            tally["failed"] += 1
                            tally["statuses"][status] = tally["statuses"].get(status, 0) + 1

        threads = [threading.Thread(target=read_round_and_round, daemon=True) for _ in range(readers)]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        counts = rebuild(stack.engine, stack.read_db)
        seconds = time.monotonic() - started
        stop.set()
        for thread in threads:
            thread.join(30)
        return {"events": sum(counts.values()), "rebuild_s": round(seconds, 2), **tally}
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=2)
    print(json.dumps(measure(parser.parse_args().readers)))


if __name__ == "__main__":
    main()
