"""Start-up waits for a server that does not answer yet: retried with back-off, logged, stoppable."""

from __future__ import annotations

import logging
import threading

import pytest

from cqrs_demo.config import Settings
from cqrs_demo.connections import relay_link_arguments
from cqrs_demo.messaging.backoff import Backoff
from cqrs_demo.startup import wait_for

QUICK = dict(first=0.001, factor=2.0, cap=0.004)


class Server:
    def __init__(self, answers_after: int) -> None:
        self.tries = 0
        self.answers_after = answers_after

    def connect(self) -> None:
        self.tries += 1
        if self.tries <= self.answers_after:
            raise ConnectionRefusedError(111, "Connection refused")


def test_it_retries_until_the_server_answers_and_logs_each_wait(caplog):
    server = Server(answers_after=3)
    with caplog.at_level(logging.INFO, logger="cqrs_demo.startup"):
        assert wait_for("PostgreSQL", server.connect, (OSError,), backoff=Backoff(**QUICK)) is True
    assert server.tries == 4
    waits = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(waits) == 3 and all(m.startswith("waiting for PostgreSQL (try ") for m in waits), waits
    assert "Connection refused" in waits[0]
    assert "PostgreSQL answers after 3 failed tries" in caplog.messages[-1]


def test_a_server_that_answers_at_once_costs_one_try_and_no_log(caplog):
    server = Server(answers_after=0)
    with caplog.at_level(logging.INFO, logger="cqrs_demo.startup"):
        assert wait_for("MongoDB", server.connect, (OSError,)) is True
    assert server.tries == 1 and not caplog.records


def test_an_error_that_is_not_about_reachability_is_raised_at_once():
    def broken():
        raise ValueError("schema is wrong")

    with pytest.raises(ValueError, match="schema is wrong"):
        wait_for("PostgreSQL", broken, (OSError,), backoff=Backoff(**QUICK))


def test_being_told_to_stop_ends_the_wait():
    stop = threading.Event()
    server = Server(answers_after=10**9)

    def connect_then_stop():
        if server.tries == 2:
            stop.set()
        server.connect()

    assert wait_for("RabbitMQ", connect_then_stop, (OSError,), stop=stop, backoff=Backoff(**QUICK)) is False
    assert server.tries == 3


def test_the_relays_links_give_up_on_a_silent_peer_within_the_lease():
    args = relay_link_arguments(Settings(relay_lease_seconds=8))
    assert args["keepalives"] == 1
    given_up_after = args["keepalives_idle"] + args["keepalives_count"] * args["keepalives_interval"]
    assert given_up_after <= 8 and args["tcp_user_timeout"] == 8000
    # The server side gets the same, so PostgreSQL drops a vanished relay (and its lock) as fast.
    assert "-c tcp_user_timeout=8000" in args["options"] and "-c tcp_keepalives_count=3" in args["options"]
