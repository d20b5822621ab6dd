"""The floor the benchmarks set beside the stack: the bare pipeline loses and doubles nothing and
leaves nothing behind on the servers; the bare HTTP server answers every request and stops."""

import pika.exceptions
import psutil
import psycopg
import pytest

from cqrs_demo.bench import bare_http, bare_pipeline
from cqrs_demo.bench.bare_pipeline import PRODUCTS, Pipeline
from cqrs_demo.connections import amqp_connection, libpq_url, mongo_client


def test_every_event_of_the_bare_pipeline_reaches_mongodb_and_is_timed_once(settings):
    events = 2 * PRODUCTS + 7  # every product updated twice, seven of them three times
    pipeline = Pipeline(settings)
    pipeline.create()
    try:
        result = bare_pipeline.run_on(settings, rate=200, seconds=events / 200)
        with mongo_client(settings) as client:
            documents = {d["_id"]: d["version"] for d in client[settings.mongo_database].products.find()}
        with psycopg.connect(libpq_url(settings)) as conn:
            rows = dict(conn.execute(f'SELECT id, version FROM "{settings.schema}".product').fetchall())
            unpublished = conn.execute(f'SELECT count(*) FROM "{settings.schema}".outbox '
                                       'WHERE published_at IS NULL').fetchone()[0]
    finally:
        pipeline.drop()

    assert result["events"] == result["visible"] == result["write_to_visible_ms"]["count"] == events
    assert documents == rows
    assert sorted(set(rows.values())) == [3, 4]
    assert unpublished == 0
    assert result["processes"]["postgresql"] == 2  # the writer's connection and the relay's
    assert set(result["cpu_ms_per_event"]) >= {"pipeline", "postgresql", "rabbitmq"}
    assert all(ms > 0 for ms in result["cpu_ms_per_event"].values())


def test_the_bare_pipeline_removes_its_tables_queue_exchange_and_documents(settings):
    bare_pipeline.measure(rate=100, seconds=0.2, settings=settings)

    with psycopg.connect(libpq_url(settings)) as conn:
        assert conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (settings.schema,)).fetchone() is None
    with mongo_client(settings) as client:
        assert settings.mongo_database not in client.list_database_names()
    connection = amqp_connection(settings)
    try:
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
            connection.channel().queue_declare(f"{settings.namespace}.bare", passive=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
            connection.channel().exchange_declare(settings.exchange, passive=True)
    finally:
        connection.close()


def test_the_bare_http_request_is_measured_on_both_sides_and_its_server_stopped():
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = bare_http.measure(rate=100, seconds=0.3)

    assert result["requests"] == 30
    assert result["cpu_ms_per_request"]["server"] > 0
    assert result["cpu_ms_per_request"]["client"] > 0
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before
