"""The bare pipeline: what the servers allow without the services.

One process does the stack's path with nothing around it: a writer updates a product row and
appends its event to an outbox table, with a NOTIFY, in one transaction; a relay thread LISTENs,
publishes each new row persistent, waits for the broker's confirm, and marks it published; a
consumer thread upserts each event into MongoDB under a version check and acknowledges it after
the write. The guarantees the stack keeps (confirms, persistent messages, manual acks, version
checks) are kept; HTTP, validation, status records and the read-your-writes GET are not there.

Run on the same servers next to the stack (`cpu_per_command`, `lag_at_rate`), it shows how far
the stack is from that floor: CPU per event of each part, and write-to-visible latency (commit
begun to upsert done). It runs as a process of its own, `python -m cqrs_demo.bench.bare_pipeline
EVENTS RATE`, so its CPU is counted apart from the benchmark's: it prints `ready` once connected,
writes when a line arrives on its standard input, prints the latencies as JSON, and exits when
its standard input closes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pika
import psycopg
import pymongo.errors
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from cqrs_demo import config
from cqrs_demo.bench.process_cost import by_name, measure_while, postgres_backends, tree
from cqrs_demo.bench.record import percentiles
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, ensure_database, mongo_client
from cqrs_demo.runtime.standin import MongoStandIn

NAMESPACE = "bench_bare"
PRODUCTS = 50


def libpq_url(settings: Settings) -> str:
    """The database URL as psycopg takes it, without SQLAlchemy's driver name."""
    return make_url(settings.database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Pipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schema = settings.schema
        self.exchange, self.queue = settings.exchange, f"{settings.namespace}.bare"
        self.channel_name = f"{settings.namespace}_bare"
        self.started: dict[int, float] = {}  # outbox position -> when its transaction began
        self.visible_ms: list[float] = []
        self._all_visible = threading.Event()
        self._expected = 0

    # -- set-up and clean-up -----------------------------------------------------------------

    def create(self) -> None:
        with psycopg.connect(libpq_url(self.settings), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
            conn.execute(f'CREATE TABLE "{self.schema}".product (id int PRIMARY KEY, price numeric, version int)')
            conn.execute(f'CREATE TABLE "{self.schema}".outbox (position bigserial PRIMARY KEY, payload jsonb, '
                         'published_at timestamptz)')
            conn.execute(f'INSERT INTO "{self.schema}".product SELECT n, 10, 1 FROM generate_series(1, {PRODUCTS}) n')
        connection = amqp_connection(self.settings)
        channel = connection.channel()
        channel.exchange_declare(self.exchange, "topic", durable=True)
        channel.queue_declare(self.queue, durable=True)
        channel.queue_purge(self.queue)
        channel.queue_bind(self.queue, self.exchange, "product.#")
        connection.close()
        mongo_client(self.settings)[self.settings.mongo_database].products.drop()

    def drop(self) -> None:
        with psycopg.connect(libpq_url(self.settings), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        connection = amqp_connection(self.settings)
        channel = connection.channel()
        channel.queue_delete(self.queue)
        channel.exchange_delete(self.exchange)
        connection.close()
        mongo_client(self.settings).drop_database(self.settings.mongo_database)

    # -- the three parts ---------------------------------------------------------------------

    def relay(self, stop: threading.Event) -> None:
        with psycopg.connect(libpq_url(self.settings), autocommit=True) as conn:
            conn.execute(f"LISTEN {self.channel_name}")
            channel = amqp_connection(self.settings).channel()
            channel.confirm_delivery()
            persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")
            while not stop.is_set():
                rows = conn.execute(f'SELECT position, payload FROM "{self.schema}".outbox '
                                    'WHERE published_at IS NULL ORDER BY position LIMIT 500').fetchall()
                if not rows:
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        pass
                    continue
                for position, payload in rows:
                    body = json.dumps({**payload, "position": position}).encode()
                    channel.basic_publish(self.exchange, "product.updated", body, persistent)
                conn.execute(f'UPDATE "{self.schema}".outbox SET published_at = now() WHERE position = ANY(%s)',
                             ([position for position, _ in rows],))
            channel.connection.close()

    def consumer(self, ready: threading.Event, stop: threading.Event) -> None:
        products = mongo_client(self.settings)[self.settings.mongo_database].products
        channel = amqp_connection(self.settings).channel()
        channel.basic_qos(prefetch_count=100)
        ready.set()
        for method, _, body in channel.consume(self.queue, inactivity_timeout=0.5):
            if stop.is_set():
                break
            if method is None:
                continue
            event = json.loads(body)
            try:
                products.update_one({"_id": event["id"], "version": {"$lt": event["version"]}},
                                    {"$set": {"price": event["price"], "version": event["version"]}}, upsert=True)
            except pymongo.errors.DuplicateKeyError:
                pass  # a newer version is there already
            self.visible_ms.append((time.perf_counter() - self.started[event["position"]]) * 1000)
            channel.basic_ack(method.delivery_tag)
            if len(self.visible_ms) >= self._expected:
                self._all_visible.set()
        channel.connection.close()

    def write(self, conn: psycopg.Connection, events: int, rate: float) -> None:
        self._expected = events
        start = time.perf_counter()
        for number in range(events):
            time.sleep(max(0.0, start + number / rate - time.perf_counter()))
            began = time.perf_counter()
            product_id, price = number % PRODUCTS + 1, f"{10 + number % 500 / 100:.2f}"
            with conn.transaction():
                version = conn.execute(f'UPDATE "{self.schema}".product SET price = %s, version = version + 1 '
                                       'WHERE id = %s RETURNING version', (price, product_id)).fetchone()[0]
                position = conn.execute(
                    f'INSERT INTO "{self.schema}".outbox (payload) VALUES (%s) RETURNING position',
                    (json.dumps({"id": product_id, "price": price, "version": version}),)).fetchone()[0]
                self.started[position] = began
                conn.execute(f"NOTIFY {self.channel_name}")

    def run(self, events: int, rate: float, go: threading.Event, done: threading.Event) -> None:
        """Write `events` at `rate` once `go` is set, print every write-to-visible latency, and
        keep every connection open until `done` is set: a PostgreSQL backend that ended with its
        connection could no longer be read by the benchmark."""
        stop, consuming = threading.Event(), threading.Event()
        threads = [threading.Thread(target=self.relay, args=(stop,), daemon=True),
                   threading.Thread(target=self.consumer, args=(consuming, stop), daemon=True)]
        for thread in threads:
            thread.start()
        consuming.wait(30)
        with psycopg.connect(libpq_url(self.settings)) as conn:
            time.sleep(0.2)  # the relay's LISTEN is in place
            print("ready", flush=True)
            go.wait()
            self.write(conn, events, rate)
            self._all_visible.wait(60)
            print(json.dumps({"events": events, "visible": len(self.visible_ms), "visible_ms": self.visible_ms}),
                  flush=True)
            done.wait()
        stop.set()
        for thread in threads:
            thread.join(5)


def main(argv: list[str]) -> None:
    events, rate = int(argv[0]), float(argv[1])
    go, done = threading.Event(), threading.Event()

    def follow_stdin() -> None:
        sys.stdin.readline()
        go.set()
        sys.stdin.readline()  # returns at end of input
        done.set()

    threading.Thread(target=follow_stdin, daemon=True).start()
    Pipeline(config.from_environment()).run(events, rate, go, done)


# -- measured from the benchmark's side -------------------------------------------------------

class BareServers:
    """The configured servers set up for the pipeline, with a MongoDB stand-in of its own if no
    MongoDB is configured (file-backed, as the stack's)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or config.from_environment().with_(namespace=NAMESPACE)
        self.standin: MongoStandIn | None = None

    def __enter__(self) -> "BareServers":
        ensure_database(self.settings.database_url)
        if not self.settings.mongo_url:
            self.standin = MongoStandIn(self.settings.stack_dir / "mongo").start()
            self.settings = self.settings.with_(mongo_url=self.standin.url)
        Pipeline(self.settings).create()
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            Pipeline(self.settings).drop()
        finally:
            if self.standin:
                self.standin.stop()

    def measure(self, rate: float, seconds: float) -> dict:
        """Run the pipeline at `rate` for `seconds`: CPU ms per event of each part, and its latency."""
        events = int(rate * seconds)
        child = subprocess.Popen([sys.executable, "-m", "cqrs_demo.bench.bare_pipeline", str(events), str(rate)],
                                 env={**os.environ, **config.to_environment(self.settings)},
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        engine = sa.create_engine(self.settings.database_url, poolclass=NullPool)
        try:
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("the bare pipeline did not start; its error is above")
            groups = {"pipeline": lambda: tree(child.pid),
                      "postgresql": lambda: postgres_backends(engine, [child.pid]),
                      "rabbitmq": lambda: by_name("beam.smp")}
            if self.standin:
                groups["mongo stand-in"] = lambda: tree(self.standin.pid)
            footprints, outcome = measure_while(groups, lambda: self._go(child))
        finally:
            engine.dispose()
            child.stdin.close()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        per_event = {name: round(f.cpu_seconds * 1000 / events, 3) for name, f in footprints.items()}
        return {"rate": rate, "events": events, "visible": outcome["visible"], "cpu_ms_per_event": per_event,
                "total_cpu_ms_per_event": round(sum(per_event.values()), 3),
                "write_to_visible_ms": percentiles(outcome["visible_ms"])}

    @staticmethod
    def _go(child: subprocess.Popen) -> dict:
        child.stdin.write("go\n")
        child.stdin.flush()
        return json.loads(child.stdout.readline())


if __name__ == "__main__":
    main(sys.argv[1:])
