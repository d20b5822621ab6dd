"""The benchmark scenarios; each starts its own stack, measures, and returns its numbers.

The classroom's scenario lives in `bench.classroom`, the links' in `bench.links`.

Every scenario takes `quick`: short runs for the notebook, full runs for `benchmarks/results`.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from datetime import datetime
from typing import Callable

import matplotlib.pyplot as plt
import pandas as pd
import requests
import sqlalchemy as sa

from cqrs_demo.bench import bare_pipeline
from cqrs_demo.bench.classroom import classroom
from cqrs_demo.bench.command_cost import cpu_per_command
from cqrs_demo.bench.links import first_command_after_idle, relay_takeover
from cqrs_demo.bench.partitioned import partitioned_catchup
from cqrs_demo.bench.record import percentiles
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.load import LoadGenerator
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.polling import wait_until
from cqrs_demo.read import queries
from cqrs_demo.read.projector import APPLICATIONS
from cqrs_demo.runtime import processes
from cqrs_demo.runtime.health import http_ok
from cqrs_demo.runtime.ports import free_port
from cqrs_demo.write import orders as order_commands
from cqrs_demo.write import products as product_commands
from cqrs_demo.write.commands import PlaceOrder, ProductPatch
from cqrs_demo.write.schema import outbox
from cqrs_demo.write.transaction import command_transaction


def _stack(name: str, **settings) -> LabStack:
    return LabStack(namespace=f"bench_{name}", **settings).start()


def _closed_loop(call: Callable[[requests.Session, int], float], clients: int, seconds: float) -> list[float]:
    """`clients` threads calling `call` back to back for `seconds`; every latency in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(number: int) -> None:
        session, mine, n = requests.Session(), [], 0
        while time.monotonic() < deadline:
            mine.append(call(session, number * 1_000_000 + n))
            n += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def _timed(send: Callable[[], requests.Response]) -> float:
    started = time.perf_counter()
    response = send()
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code >= 500:
        raise RuntimeError(f"server error {response.status_code}: {response.text[:200]}")
    return elapsed


def _seed_catalogue(stack: LabStack, products: int, stock: int = 10**9) -> list[int]:
    client = WorkbenchClient.for_stack(stack)
    tag = f"{time.time_ns():x}"
    return [client.create_product(f"Bench {i}", "9.99", stock, f"B-{tag}-{i}").body["id"] for i in range(products)]


# -- 1. command throughput -----------------------------------------------------------------------

def command_throughput(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    clients_list = [1, 8] if quick else [1, 8, 32]
    seconds = 3 if quick else 10
    stack = _stack("throughput")
    try:
        ids = _seed_catalogue(stack, 50)
        url = stack.command_url
        kinds = {
            "product update": lambda s, n: _timed(lambda: s.patch(f"{url}/api/products/{ids[n % len(ids)]}",
                                                                    json={"price": 5 + n % 100})),
            "product create": lambda s, n: _timed(lambda: s.post(f"{url}/api/products", json={
                "name": f"n{n}", "price": 1, "quantity": 5, "sku": f"T-{n}-{time.time_ns()}"})),
            "order": lambda s, n: _timed(lambda: s.post(f"{url}/api/orders", json={
                "customer": f"c{n % 50}", "lines": [{"product_id": ids[n % len(ids)], "quantity": 1},
                                                    {"product_id": ids[(n + 7) % len(ids)], "quantity": 2}]})),
        }
        results = {}
        for kind, call in kinds.items():
            for clients in clients_list:
                latencies = _closed_loop(call, clients, seconds)
                results[f"{kind} x{clients}"] = {"kind": kind, "clients": clients,
                                                 "commands_per_s": round(len(latencies) / seconds, 1),
                                                 "latency_ms": percentiles(latencies)}
        wait_until_equal(stack.engine, stack.read_db, 60)
    finally:
        stack.stop()
    frame = pd.DataFrame(results.values())
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for kind, group in frame.groupby("kind"):
        ax.plot(group["clients"], group["commands_per_s"], marker="o", label=kind)
    ax.set_xlabel("concurrent clients")
    ax.set_ylabel("commands/s")
    ax.set_title("Command throughput")
    ax.legend()
    fig.tight_layout()
    return {"clients": clients_list, "seconds_each": seconds}, results, fig


# -- 2. write-to-visible lag at a fixed offered rate ----------------------------------------------

def _hops(stack: LabStack, frame: pd.DataFrame) -> dict:
    """Median milliseconds per hop, from the timestamps recorded where each hop happens."""
    positions = [int(p) for p in frame["position"].dropna()]
    with stack.engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.position, outbox.c.event_id, outbox.c.received_at, outbox.c.committed_at,
                      outbox.c.published_at).where(outbox.c.position.in_(positions))
        ).all()
    # "published" is when the relay sent the message (its header, kept in the application log);
    # the outbox's published_at is later, when the row was marked after the broker's confirm.
    applied = {a["event_id"]: a for a in stack.read_db[APPLICATIONS].find({"outcome": "applied"})}

    def published(row) -> float | None:
        sent = applied.get(str(row.event_id), {}).get("published_at")
        if sent:
            return datetime.fromisoformat(sent).timestamp()
        return row.published_at.timestamp() if row.published_at else None

    hops = pd.DataFrame(
        [{"position": r.position,
          "received": r.received_at.timestamp(), "committed": r.committed_at.timestamp(),
          "published": published(r),
          "applied": pd.Timestamp(applied[str(r.event_id)]["at"]).timestamp() if str(r.event_id) in applied else None}
         for r in rows]
    ).merge(frame[["position", "sent_at", "visible_ms"]], on="position")
    hops["sent"] = hops["sent_at"]
    hops["visible"] = hops["sent_at"] + hops["visible_ms"] / 1000
    steps = [("sent", "received"), ("received", "committed"), ("committed", "published"),
             ("published", "applied"), ("applied", "visible")]
    return {f"{a} -> {b}": round(float(((hops[b] - hops[a]) * 1000).median()), 3)
            for a, b in steps if hops[a].notna().any() and hops[b].notna().any()}


def _offered(stack: LabStack, rate: float, seconds: float, threads: int | None = None) -> dict:
    load = LoadGenerator(stack, products=50)
    load.prepare()
    wait_until_equal(stack.engine, stack.read_db, 30)
    sessions = _sessions_opened(stack)
    started = time.monotonic()
    frame = load.run(commands=int(rate * seconds), rate=rate, threads=threads or max(16, int(rate / 8)),
                     progress=False)
    elapsed = time.monotonic() - started
    sessions = _sessions_opened(stack) - sessions
    check = wait_until_equal(stack.engine, stack.read_db, 60)
    ok = frame[frame["status"] < 300]
    numbers = {
        "offered_per_s": rate,
        "achieved_per_s": round(len(ok) / elapsed, 1),
        "errors": int((frame["status"] >= 300).sum()),
        "write_ms": percentiles(ok["write_ms"]),
        "write_to_visible_ms": percentiles(ok["visible_ms"]),
        # Each is a new PostgreSQL backend process: a pool that opens one per command under load
        # costs the server more than the command itself.
        "postgresql_sessions_opened": sessions,
        "converged": check["equal"],
    }
    if stack.settings.projection_audit:
        numbers["hops_median_ms"] = _hops(stack, ok)
    return numbers


def _sessions_opened(stack: LabStack) -> int:
    """Sessions PostgreSQL has opened on the stack's database since its statistics began."""
    with stack.engine.connect() as conn:
        return conn.scalar(sa.text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))


def _lag_figure(results: dict, title: str) -> plt.Figure:
    frame = pd.DataFrame([{"run": name, **r["write_to_visible_ms"]} for name, r in results.items()])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = range(len(frame))
    for column in ("p50", "p95", "p99"):
        ax.plot(list(x), frame[column], marker="o", label=column)
    if all("bare_pipeline" in r for r in results.values()):
        for column in ("p50", "p99"):
            floor = [r["bare_pipeline"]["write_to_visible_ms"][column] for r in results.values()]
            ax.plot(list(x), floor, linestyle="--", color="grey", marker=".", label=f"bare pipeline {column}")
    ax.set_xticks(list(x), frame["run"], rotation=15)
    ax.set_ylabel("write-to-visible ms")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def lag_at_rate(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    """Each rate twice: as the stack runs by default, and with the projector's application log,
    whose timestamps give each hop's time but which costs the read model a write per batch;
    then the bare pipeline at the same rate on the same servers, the floor under both."""
    rates = [50] if quick else [50, 200, 500]
    seconds = 3 if quick else 30
    results = {}
    for rate in rates:
        runs = []
        for audit in (False, True):
            stack = _stack(f"lag{rate}{'_log' if audit else ''}", projection_audit=audit)
            try:
                runs.append(_offered(stack, rate, seconds))
            finally:
                stack.stop()
        default, logged = runs
        bare = bare_pipeline.measure(rate, seconds)
        results[f"{rate}/s"] = {**default, "hops_median_ms": logged.pop("hops_median_ms"),
                                "with_application_log": logged, "bare_pipeline": bare}
    return {"rates": rates, "seconds": seconds, "operation": "PATCH price, 50 products"}, results, \
        _lag_figure(results, "Write-to-visible latency at offered rates")


# -- 3. projector catch-up -------------------------------------------------------------------------

def _queue_events(stack: LabStack, count: int, products: int = 100) -> None:
    """`count` real product events, written through the write side's own commands, in bulk."""
    ids = _seed_catalogue(stack, products)
    per_transaction = 100
    for start in range(0, count - products, per_transaction):
        with command_transaction(stack.engine) as tx:
            for n in range(start, min(start + per_transaction, count - products)):
                product_commands.patch(tx, ids[n % products], ProductPatch(quantity=n % 1000), None)


def projector_catchup(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    events = 2000 if quick else 20000
    stack = _stack("catchup")
    try:
        stack.pause("projector")
        _queue_events(stack, events)
        stack.wait_published(timeout=300)
        resumed = time.monotonic()
        stack.resume("projector")
        timeline = []

        def caught_up() -> bool:
            applied = queries.projection_status(stack.read_db)["applied"]
            timeline.append((time.monotonic() - resumed, applied))
            return applied >= events

        wait_until(caught_up, timeout=600, what=f"the projector to apply {events} events")
        first = next(t for t, a in timeline if a > 0)
        total = timeline[-1][0]
        converged = wait_until_equal(stack.engine, stack.read_db, 60)["equal"]
    finally:
        stack.stop()
    results = {"events": events, "seconds_from_resume": round(total, 3),
               "seconds_from_first_applied": round(total - first, 3),
               "events_per_s": round(events / (total - first), 1),
               "events_per_s_including_start": round(events / total, 1), "converged": converged}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot([t for t, _ in timeline], [a for _, a in timeline])
    ax.set_xlabel("seconds after resuming the projector")
    ax.set_ylabel("events applied")
    ax.set_title(f"Projector catch-up: {results['events_per_s']:.0f} events/s")
    fig.tight_layout()
    return {"events": events, "products": 100, "prefetch": stack.settings.projector_prefetch}, results, fig


# -- 4. the read-side payoff -----------------------------------------------------------------------

def _place_orders(stack: LabStack, ids: list[int], count: int) -> list[int]:
    rng = random.Random(11)
    placed = []
    for n in range(count):
        lines = [{"product_id": pid, "quantity": rng.randint(1, 3)} for pid in rng.sample(ids, rng.randint(1, 5))]
        with command_transaction(stack.engine) as tx:
            placed.append(order_commands.place(tx, PlaceOrder(customer=f"c{n % 40}", lines=lines))["id"])
    return placed


def read_payoff(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    clients, seconds, orders = (4, 2, 100) if quick else (8, 10, 2000)
    stack = _stack("reads")
    port = free_port()
    baseline = processes.start("baseline", [sys.executable, "-m", "cqrs_demo.bench.baseline", str(port)],
                               stack.stack.directory / "baseline.log", stack.settings)
    try:
        ids = _seed_catalogue(stack, 100)
        order_ids = _place_orders(stack, ids, orders)
        wait_until_equal(stack.engine, stack.read_db, 120)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{base}/health"), timeout=30, what="the baseline server")
        query = stack.query_url
        reads = {
            ("order detail", "query service (MongoDB)"): lambda s, n: _timed(lambda: s.get(f"{query}/api/orders/{order_ids[n % len(order_ids)]}")),
            ("order detail", "baseline (PostgreSQL join)"): lambda s, n: _timed(lambda: s.get(f"{base}/baseline/orders/{order_ids[n % len(order_ids)]}")),
            ("top products", "query service (MongoDB)"): lambda s, n: _timed(lambda: s.get(f"{query}/api/stats/top-products")),
            ("top products", "baseline (PostgreSQL join)"): lambda s, n: _timed(lambda: s.get(f"{base}/baseline/stats/top-products")),
        }
        results = {}
        for (read, source), call in reads.items():
            latencies = _closed_loop(call, clients, seconds)
            results[f"{read} / {source}"] = {"read": read, "source": source,
                                              "requests_per_s": round(len(latencies) / seconds, 1),
                                              "latency_ms": percentiles(latencies)}
    finally:
        baseline.stop()
        stack.stop()
    for read in ("order detail", "top products"):
        ours = results[f"{read} / query service (MongoDB)"]
        theirs = results[f"{read} / baseline (PostgreSQL join)"]
        results[f"{read} ratio"] = {"throughput_ratio_query_over_baseline":
                                    round(ours["requests_per_s"] / theirs["requests_per_s"], 3),
                                    "p99_ratio_query_over_baseline":
                                    round(ours["latency_ms"]["p99"] / theirs["latency_ms"]["p99"], 3)}
    frame = pd.DataFrame([r for r in results.values() if "source" in r])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    pivot = frame.pivot(index="read", columns="source", values="requests_per_s")
    pivot.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("requests/s")
    ax.set_title("Read-side payoff: same reads, two sources")
    fig.tight_layout()
    return {"clients": clients, "seconds": seconds, "orders": orders, "products": 100}, results, fig


# -- 5. the price of the guarantee -----------------------------------------------------------------

def price_of_guarantee(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    rates = [50] if quick else [50, 200]
    seconds = 3 if quick else 15
    results = {}
    for mode in ("naive", "outbox"):
        for rate in rates:
            stack = _stack(f"{mode}{rate}", delivery=mode, projection_audit=True)
            try:
                results[f"{mode} {rate}/s"] = {"mode": mode, **_offered(stack, rate, seconds)}
            finally:
                stack.stop()
    for rate in rates:
        naive, safe = results[f"naive {rate}/s"], results[f"outbox {rate}/s"]
        results[f"ratio {rate}/s"] = {
            "p50_outbox_over_naive": round(safe["write_to_visible_ms"]["p50"] / naive["write_to_visible_ms"]["p50"], 3),
            "p99_outbox_over_naive": round(safe["write_to_visible_ms"]["p99"] / naive["write_to_visible_ms"]["p99"], 3),
            "throughput_outbox_over_naive": round(safe["achieved_per_s"] / naive["achieved_per_s"], 3),
        }
    shown = {k: v for k, v in results.items() if "write_to_visible_ms" in v}
    return {"rates": rates, "seconds": seconds}, results, _lag_figure(shown, "Naive vs outbox: write-to-visible")


# -- 6. relay wake-up ------------------------------------------------------------------------------

def relay_wakeup(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    seconds = 5 if quick else 15
    variants = {"LISTEN/NOTIFY": {"relay_listen": True, "relay_poll_seconds": 1.0},
                "poll 100 ms": {"relay_listen": False, "relay_poll_seconds": 0.1},
                "poll 1 s": {"relay_listen": False, "relay_poll_seconds": 1.0}}
    results = {}
    for name, settings in variants.items():
        stack = _stack("wake" + name.split()[-1].replace("/", "").replace("ms", "").lower(),
                       projection_audit=True, **settings)
        try:
            results[name] = _offered(stack, 50, seconds)
        finally:
            stack.stop()
    return {"rate": 50, "seconds": seconds}, results, _lag_figure(results, "Relay wake-up at 50 commands/s")


SCENARIOS = {
    "command_throughput": command_throughput,
    "lag_at_rate": lag_at_rate,
    "projector_catchup": projector_catchup,
    "partitioned_catchup": partitioned_catchup,
    "read_payoff": read_payoff,
    "price_of_guarantee": price_of_guarantee,
    "relay_wakeup": relay_wakeup,
    "first_command_after_idle": first_command_after_idle,
    "relay_takeover": relay_takeover,
    "classroom": classroom,
    "cpu_per_command": cpu_per_command,
}
