"""Pooled PostgreSQL connections: pinged only after an idle spell, and a dead one replaced unnoticed.
A RabbitMQ connection found lost says so with a pika error, however its loss was first reported."""

from __future__ import annotations

import time

import pika.exceptions
import pytest
import sqlalchemy as sa

from cqrs_demo.connections import amqp_connection, keep_alive, ping_when_idle
from cqrs_demo.lab.proxy import broker_link


def _pings(engine) -> list[float]:
    """Every ping the engine sends, recorded as it is sent."""
    sent: list[float] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection):
        sent.append(time.monotonic())
        return ping(dbapi_connection)

    engine.dialect.do_ping = counted
    return sent


def test_a_connection_back_in_use_at_once_is_not_pinged_again(base_settings):
    engine = ping_when_idle(sa.create_engine(base_settings.database_url, pool_size=1), idle_seconds=30)
    pings = _pings(engine)
    try:
        for _ in range(20):
            with engine.connect() as conn:
                assert conn.scalar(sa.text("SELECT 1")) == 1
        assert len(pings) == 1  # the first checkout of the new connection only
    finally:
        engine.dispose()


def test_a_connection_that_died_while_idle_is_replaced_before_use(base_settings):
    engine = ping_when_idle(sa.create_engine(base_settings.database_url, pool_size=1), idle_seconds=0.2)
    pings = _pings(engine)
    try:
        with engine.connect() as conn:
            victim = conn.scalar(sa.text("SELECT pg_backend_pid()"))
        with sa.create_engine(base_settings.database_url, isolation_level="AUTOCOMMIT").connect() as admin:
            assert admin.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": victim})
        time.sleep(0.3)
        with engine.connect() as conn:  # no error: the ping found it dead, the pool connected anew
            assert conn.scalar(sa.text("SELECT pg_backend_pid()")) != victim
        assert len(pings) >= 2
    finally:
        engine.dispose()


def test_keeping_alive_a_connection_whose_loss_was_already_handled_raises_a_pika_error(settings):
    link, amqp_url = broker_link(settings.amqp_url)
    link.start()
    try:
        connection = amqp_connection(settings.with_(amqp_url=amqp_url))
        channel = connection.channel()
        link.cut()
        with pytest.raises(pika.exceptions.AMQPError):
            for _ in range(100):  # until a call notices the cut; the caller handles it and carries on
                channel.basic_publish("", "nowhere", b"lost")
                time.sleep(0.05)
        with pytest.raises(pika.exceptions.AMQPError):  # not pika's own ValueError
            keep_alive(connection)
    finally:
        link.stop()
