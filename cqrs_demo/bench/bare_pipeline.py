"""The bare pipeline: what the servers allow without the services.

One process does the stack's path with nothing around it: a writer updates a product row and
appends its event to an outbox table, with a NOTIFY, in one transaction; a relay thread LISTENs,
publishes the new rows persistent and mandatory, waits once for the broker's confirms of them
all (as the stack's relay does), and marks them published; a consumer thread upserts each event
into MongoDB under a version check and acknowledges it after the write. Its version check is
simpler than the stack's (newer than the document, not next in line), and there is no HTTP, no
validation, no status record, watermark, lease or read-your-writes GET.

Run on the same servers next to the stack (`cpu_per_command`, `lag_at_rate`), it shows how far
the stack is from that floor: CPU per event of each part, and write-to-visible latency (commit
begun to upsert done). It runs as a process of its own, `python -m cqrs_demo.bench.bare_pipeline
EVENTS RATE`, so that its CPU is counted apart from the benchmark's. It talks to the benchmark
over its standard streams: it prints `ready` once every connection is open, writes when a line
arrives, prints the latencies as JSON, and exits when its standard input closes, which is also
how it stops when the benchmark dies.
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
from sqlalchemy.pool import NullPool

from cqrs_demo import config
from cqrs_demo.bench.process_cost import by_name, measure_while, postgres_backends, tree
from cqrs_demo.bench.record import percentiles
from cqrs_demo.config import Settings
from cqrs_demo.connections import amqp_connection, ensure_database, keep_alive, libpq_url, mongo_client
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.confirms import ConfirmedPublisher
from cqrs_demo.runtime.processes import child_environment
from cqrs_demo.runtime.standin import MongoStandIn

NAMESPACE = "bench_bare"
PRODUCTS = 50
START_SECONDS = 30


class Pipeline:
    """The writer, the relay and the consumer, in the process `main` runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schema = settings.schema
        self.queue = f"{settings.namespace}.bare"
        self.notify_channel = settings.notify_channel
        # Set by the writer before its commit, read by the consumer: the relay publishes only
        # committed rows, so the consumer never meets a position that is not in here yet.
        self.started: dict[int, float] = {}  # outbox position -> when its transaction began
        self.visible_ms: list[float] = []
        self._all_visible = threading.Event()
        self._expected = 0

    # -- set-up and clean-up, from the benchmark's side ---------------------------------------

    def create(self) -> None:
        with psycopg.connect(libpq_url(self.settings), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
            conn.execute(f'CREATE TABLE "{self.schema}".product (id int PRIMARY KEY, price numeric, version int)')
            conn.execute(f'CREATE TABLE "{self.schema}".outbox (position bigserial PRIMARY KEY, payload jsonb, '
                         'published_at timestamptz)')
            conn.execute(f'INSERT INTO "{self.schema}".product SELECT n, 10, 1 FROM generate_series(1, {PRODUCTS}) n')
        connection = amqp_connection(self.settings)
        try:
            channel = connection.channel()
            topology.declare_exchange(channel, self.settings)
            channel.queue_declare(self.queue, durable=True)
            channel.queue_purge(self.queue)
            channel.queue_bind(self.queue, self.settings.exchange, "product.#")
        finally:
            connection.close()
        with mongo_client(self.settings) as client:
            client[self.settings.mongo_database].products.drop()

    def drop(self) -> None:
        with psycopg.connect(libpq_url(self.settings), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        connection = amqp_connection(self.settings)
        try:
            channel = connection.channel()
            channel.queue_delete(self.queue)
            channel.exchange_delete(self.settings.exchange)
        finally:
            connection.close()
        with mongo_client(self.settings) as client:
            client.drop_database(self.settings.mongo_database)

    # -- the three parts ---------------------------------------------------------------------

    def relay(self, listening: threading.Event, stop: threading.Event) -> None:
        """Publish committed rows, oldest first, and mark them once the broker confirmed them all."""
        with psycopg.connect(libpq_url(self.settings), autocommit=True) as conn:
            conn.execute(f'LISTEN "{self.notify_channel}"')
            publisher = ConfirmedPublisher(amqp_connection(self.settings).channel())
            persistent = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, content_type="application/json")
            listening.set()
            while not stop.is_set():
                rows = conn.execute(f'SELECT position, payload FROM "{self.schema}".outbox '
                                    'WHERE published_at IS NULL ORDER BY position LIMIT 500').fetchall()
                if not rows:
                    keep_alive(publisher.connection)
                    # Every notification waiting is taken now: the next look sees all their rows.
                    if list(conn.notifies(timeout=0.5, stop_after=1)):
                        list(conn.notifies(timeout=0))
                    continue
                for position, payload in rows:
                    body = json.dumps({**payload, "position": position}).encode()
                    publisher.publish(self.settings.exchange, "product.updated", body, persistent, mandatory=True)
                publisher.wait()
                conn.execute(f'UPDATE "{self.schema}".outbox SET published_at = now() WHERE position = ANY(%s)',
                             ([position for position, _ in rows],))
            publisher.connection.close()

    def consumer(self, consuming: threading.Event, stop: threading.Event) -> None:
        """Upsert each event unless its document is as new already; acknowledge after the write."""
        with mongo_client(self.settings) as client:
            products = client[self.settings.mongo_database].products
            channel = amqp_connection(self.settings).channel()
            channel.basic_qos(prefetch_count=100)
            consuming.set()
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
                    pass  # the document is as new already: a redelivery
                self.visible_ms.append((time.perf_counter() - self.started[event["position"]]) * 1000)
                channel.basic_ack(method.delivery_tag)
                if len(self.visible_ms) >= self._expected:
                    self._all_visible.set()
            channel.connection.close()

    def write(self, conn: psycopg.Connection, events: int, rate: float) -> None:
        """`events` product updates at `rate` per second, each with its outbox row and a NOTIFY."""
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
                conn.execute(f'NOTIFY "{self.notify_channel}"')

    def run(self, events: int, rate: float, go: threading.Event, done: threading.Event) -> None:
        """Write `events` at `rate` once `go` is set, print every write-to-visible latency, and
        keep every connection open until `done` is set: a PostgreSQL backend that ended with its
        connection could no longer be read by the benchmark."""
        stop, listening, consuming = threading.Event(), threading.Event(), threading.Event()
        threads = [threading.Thread(target=self.relay, args=(listening, stop), daemon=True),
                   threading.Thread(target=self.consumer, args=(consuming, stop), daemon=True)]
        for thread in threads:
            thread.start()
        if not (listening.wait(START_SECONDS) and consuming.wait(START_SECONDS)):
            sys.exit("the bare pipeline's relay or consumer did not start")
        with psycopg.connect(libpq_url(self.settings)) as conn:
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
        if not sys.stdin.readline():
            os._exit(1)  # the benchmark is gone before it said go
        go.set()
        sys.stdin.readline()  # returns at the end of input
        done.set()

    threading.Thread(target=follow_stdin, daemon=True).start()
    Pipeline(config.from_environment()).run(events, rate, go, done)


# -- measured from the benchmark's side -------------------------------------------------------

def measure(rate: float, seconds: float, settings: Settings | None = None) -> dict:
    """Set the pipeline up on the configured servers, run it at `rate` for `seconds`, remove it:
    CPU ms per event of each part, and its write-to-visible latency. Without a configured
    MongoDB it starts a stand-in of its own, file-backed as the stack's is."""
    settings = settings or config.from_environment().with_(namespace=NAMESPACE)
    ensure_database(settings.database_url)
    standin = None
    if not settings.mongo_url:
        standin = MongoStandIn(settings.stack_dir / "mongo").start()
        settings = settings.with_(mongo_url=standin.url)
    try:
        Pipeline(settings).create()
        try:
            return run_on(settings, rate, seconds, standin)
        finally:
            Pipeline(settings).drop()
    finally:
        if standin:
            standin.stop()


def run_on(settings: Settings, rate: float, seconds: float, standin: MongoStandIn | None = None) -> dict:
    """`measure` on servers where `Pipeline.create` has set the pipeline up; `standin`, when
    given, is counted as the MongoDB part."""
    events = int(rate * seconds)
    child = subprocess.Popen([sys.executable, "-m", "cqrs_demo.bench.bare_pipeline", str(events), str(rate)],
                             env=child_environment(settings), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    engine = sa.create_engine(settings.database_url, poolclass=NullPool)
    try:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare pipeline did not start; its error is above")
        groups = {"pipeline": lambda: tree(child.pid),
                  "postgresql": lambda: postgres_backends(engine, [child.pid]),
                  "rabbitmq": lambda: by_name("beam.smp")}
        if standin:
            groups["mongo stand-in"] = lambda: tree(standin.pid)
        footprints, outcome = measure_while(groups, lambda: _go(child))
    finally:
        engine.dispose()
        child.stdin.close()  # it exits on the end of its input
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    if outcome["visible"] != events:
        raise RuntimeError(f"the bare pipeline made {outcome['visible']} of {events} events visible")
    per_event = {name: round(f.cpu_seconds * 1000 / events, 3) for name, f in footprints.items()}
    return {"rate": rate, "events": events, "visible": outcome["visible"], "cpu_ms_per_event": per_event,
            "total_cpu_ms_per_event": round(sum(per_event.values()), 3),
            "processes": {name: f.processes for name, f in footprints.items()},
            "write_to_visible_ms": percentiles(outcome["visible_ms"])}


def _go(child: subprocess.Popen) -> dict:
    child.stdin.write("go\n")
    child.stdin.flush()
    answer = child.stdout.readline()
    if not answer:
        raise RuntimeError("the bare pipeline ended before it answered; its error is above")
    return json.loads(answer)


if __name__ == "__main__":
    main(sys.argv[1:])
