"""A load generator: commands at a fixed offered rate, each timed until it is visible.

Commands are scheduled at `rate` per second regardless of how fast earlier ones finished (an
open-loop load, as real clients are), spread over `threads` workers. Each worker sends its
command, then asks the query service for the new version (`min_version`) and records when it
first got it: the write-to-visible latency a user of the system would see.
"""

from __future__ import annotations

import gc
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
from tqdm.auto import tqdm

from cqrs_demo.lab.client import KeepAliveTransport, WorkbenchClient


class LoadGenerator:
    def __init__(self, stack, products: int = 20) -> None:
        self.stack = stack
        self.products = products
        self._local = threading.local()
        self._ids: list[int] = []

    def _client(self) -> WorkbenchClient:
        if not hasattr(self._local, "client"):
            self._local.client = WorkbenchClient(self.stack.command_url, self.stack.query_url,
                                                 transport=KeepAliveTransport(), keep_history=False)
        return self._local.client

    def prepare(self) -> list[int]:
        """Create the products the load will update (once); their ids."""
        self._seed_products()
        return self._ids

    def _seed_products(self) -> None:
        if self._ids:
            return
        tag = f"{time.time_ns():x}"
        for number in range(self.products):
            exchange = self._client().create_product(
                f"Load product {number}", "10.00", 1_000_000, f"LOAD-{tag}-{number}"
            )
            self._ids.append(exchange.body["id"])

    def _one(self, number: int, due: float, wait_visible: bool) -> dict:
        time.sleep(max(0.0, due - time.monotonic()))
        client = self._client()
        product_id = self._ids[number % len(self._ids)]
        price = f"{10 + (number % 500) / 100:.2f}"
        late_ms = max(0.0, time.monotonic() - due) * 1000
        started = time.perf_counter()
        sent_at = time.time()
        exchange = client.update_product(product_id, price=price)
        written = time.perf_counter()
        row = {"n": number, "product_id": product_id, "status": exchange.status, "sent_at": sent_at,
               "late_ms": late_ms,
               "write_ms": (written - started) * 1000}
        if exchange.ok:
            row["position"] = exchange.body["position"]
        if exchange.ok and wait_visible:
            check = client.product(product_id, min_version=exchange.body["version"])
            row["visible_ms"] = (time.perf_counter() - started) * 1000 if check.status == 200 else float("nan")
        return row

    def run(self, commands: int = 200, rate: float = 50.0, threads: int | None = None, progress: bool = True,
            wait_visible: bool = True) -> pd.DataFrame:
        """Send `commands` product updates at `rate` per second; a row per command.

        With `wait_visible`, each command is also timed until the query service serves it.
        `late_ms` is how long after its scheduled time a command went out: when it grows, the
        machine (or the thread pool, `threads`) cannot keep up with the offered rate.
        """
        threads = threads or max(16, int(rate / 8))
        self._seed_products()
        rows = []
        # The objects the notebook's kernel holds already are kept out of the garbage collector's
        # way meanwhile: a full collection walking them all would pause this process, which
        # times the commands, for up to 100 ms, and show as latency the stack never had.
        gc.collect()
        gc.freeze()
        try:
            start = time.monotonic() + 0.05
            with ThreadPoolExecutor(max_workers=threads) as pool:
                futures = [pool.submit(self._one, n, start + n / rate, wait_visible) for n in range(commands)]
                for future in tqdm(futures, total=commands, disable=not progress, desc=f"{rate:g} commands/s"):
                    rows.append(future.result())
        finally:
            gc.unfreeze()
        return pd.DataFrame(rows).sort_values("n").reset_index(drop=True)


def latency_summary(frame: pd.DataFrame, column: str = "visible_ms") -> pd.DataFrame:
    """Percentiles of a latency column, in milliseconds."""
    values = frame[column].dropna()
    quantiles = values.quantile([0.5, 0.9, 0.95, 0.99]).rename(index=lambda q: f"p{int(q * 100)}")
    return pd.concat([quantiles, pd.Series({"max": values.max(), "count": float(len(values))})]).to_frame(column)
