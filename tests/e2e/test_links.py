"""Links that survive idleness, and processes that wait for servers that are not up yet.

- Idle links: RabbitMQ closes a connection that misses two heartbeats, and pika's blocking
  connection sends them only inside pika calls. The stacks here negotiate a 2 s heartbeat and
  then idle for 10 s: with the heartbeat unserviced that is five timeouts, the same as 150 s at
  the default 30 s; the same code keeps either alive. The first command after the pause must be
  visible as fast as the ones before, and it and those after it with no reconnect anywhere
  (relay, projector, or the naive command service, where a dead connection loses the event).
- Start-up: every process is started with its servers behind links that refuse connections,
  waits (and says so), and becomes healthy once they open, one server at a time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.proxy import LinkProxy
from cqrs_demo.polling import wait_until
from cqrs_demo.runtime import health, processes
from cqrs_demo.runtime.ports import free_port
from cqrs_demo.runtime.stack import Stack
from lab_fixtures import LabStacks, assert_equal
from support import SEED_PRODUCT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HEARTBEAT = 2
IDLE = 10  # five heartbeat timeouts
RECONNECTED = ("lost a connection", "died while idle", "lost: publish after commit failed")


@pytest.fixture
def labs(base_settings, tmp_path):
    stacks = LabStacks(base_settings, tmp_path)
    try:
        yield stacks
    finally:
        stacks.teardown()


def visible_after_ms(stack, client: WorkbenchClient, product_id: int, quantity: int) -> float:
    """From sending an update to its version being in the read model, in milliseconds."""
    started = time.perf_counter()
    version = client.update_product(product_id, quantity=quantity).body["version"]
    wait_until(lambda: (stack.read_db["products"].find_one({"_id": product_id}, {"version": 1}) or {})
               .get("version", 0) >= version, 10, interval=0.002, what=f"version {version} to be visible")
    return (time.perf_counter() - started) * 1000


def test_the_first_command_after_an_idle_pause_is_visible_as_fast_as_any_other(labs):
    stacks = {mode: labs.start(delivery=mode, amqp_heartbeat_seconds=HEARTBEAT) for mode in ("outbox", "naive")}
    clients, products, warm = {}, {}, {}
    for mode, stack in stacks.items():
        clients[mode] = WorkbenchClient.for_stack(stack)
        created = clients[mode].create_product("Idle", "1.00", 100, f"SKU-IDLE-{mode}")
        assert created.status == 201, created
        products[mode] = created.body["id"]
        warm[mode] = [visible_after_ms(stack, clients[mode], products[mode], n) for n in range(1, 6)]

    time.sleep(IDLE)  # the point of the test: nothing happens for five heartbeat timeouts

    for mode, stack in stacks.items():
        first = visible_after_ms(stack, clients[mode], products[mode], 99)
        # And the ones right after it: the naive service publishes from whichever request thread
        # serves it, so one dead connection may meet the second or third command, not the first.
        later = [visible_after_ms(stack, clients[mode], products[mode], 50 + n) for n in range(12)]
        print(f"{mode}: warm {[round(ms) for ms in warm[mode]]} ms, first after {IDLE}s idle {first:.0f} ms, "
              f"then {[round(ms) for ms in later]} ms")
        for name in stack.settings.services:
            log = stack.logs(name, lines=400)
            assert not any(sign in log for sign in RECONNECTED), f"{mode} {name} reconnected:\n{log[-2000:]}"
        # A reconnect alone costs the relay's first back-off (200 ms) on top of a warm command.
        assert first <= max(warm[mode]) + 150, (mode, warm[mode], first)
        assert_equal(stack, 10)


# -- start-up before the servers ---------------------------------------------------------------


def proxied(settings, pg: LinkProxy, mq: LinkProxy, mongo: LinkProxy):
    db = make_url(settings.database_url).set(host="127.0.0.1", port=pg.port)
    amqp = settings.amqp_url.replace(f"{mq.target[0]}:{mq.target[1]}", f"127.0.0.1:{mq.port}")
    mongo_url = f"mongodb://127.0.0.1:{mongo.port}/"
    assert amqp != settings.amqp_url, "give CQRS_AMQP_URL as host:port"
    return settings.with_(database_url=db.render_as_string(hide_password=False), amqp_url=amqp, mongo_url=mongo_url)


def links_to(settings) -> dict[str, LinkProxy]:
    db = make_url(settings.database_url)
    amqp = settings.amqp_url.split("@")[-1].split("/")[0]
    mongo = settings.mongo_url.split("//")[1].split("/")[0]
    targets = {"PostgreSQL": (db.host, db.port or 5432), "RabbitMQ": tuple(amqp.rsplit(":", 1)),
               "MongoDB": tuple(mongo.rsplit(":", 1))}
    links = {name: LinkProxy(host, int(port)) for name, (host, port) in targets.items()}
    for link in links.values():
        link.cut()  # refusing, before anyone calls
        link.start()
    return links


def test_every_process_started_before_its_servers_waits_and_then_serves(settings, tmp_path):
    links = links_to(settings)
    behind = proxied(settings, links["PostgreSQL"], links["RabbitMQ"], links["MongoDB"])
    behind = behind.with_(command_port=free_port(), query_port=free_port(), run_dir=tmp_path)
    naive = behind.with_(delivery="naive", command_port=free_port())
    stack = Stack(behind)
    started = {name: processes.start_service(name, behind, Path(tmp_path) / f"{name}.log")
               for name in ("command", "query", "relay", "projector")}
    started["naive command"] = processes.start_service("command", naive, Path(tmp_path) / "naive-command.log")
    stack.processes = {name: started[name] for name in ("command", "query", "relay", "projector")}

    def waits_for(name: str, server: str, timeout: float = 30) -> None:
        wait_until(lambda: f"waiting for {server}" in started[name].log(20000) or not started[name].alive(),
                   timeout, interval=0.1, what=f"{name} to wait for {server}")
        assert started[name].alive(), f"{name} exited instead of waiting:\n{started[name].log()}"

    naive_health = f"http://{naive.host}:{naive.command_port}/health"
    try:
        # Nothing answers: each waits for the first server it needs.
        for name, server in [("command", "PostgreSQL"), ("naive command", "PostgreSQL"), ("query", "MongoDB"),
                             ("relay", "PostgreSQL"), ("projector", "MongoDB")]:
            waits_for(name, server)

        links["PostgreSQL"].restore()
        stack.wait_healthy(30, names=["command"])
        waits_for("naive command", "RabbitMQ")  # it publishes itself: it needs the broker too

        links["MongoDB"].restore()
        stack.wait_healthy(30, names=["query"])
        for name in ("relay", "projector"):  # now each is held up by the broker alone
            wait_until(lambda: "retrying in" in started[name].log(20000), 30, what=f"{name} to retry the broker")
            assert started[name].alive(), started[name].log()

        links["RabbitMQ"].restore()
        stack.wait_healthy(60)
        wait_until(lambda: health.http_ok(naive_health), 30, what="the naive command service to be healthy")

        client = WorkbenchClient(stack.urls()["command"], stack.urls()["query"])
        created = client.create_product(**{k: SEED_PRODUCT[k] for k in ("name", "price", "quantity", "sku")})
        assert created.status == 201, created
        assert client.product(created.body["id"], min_version=1).status == 200
    finally:
        started["naive command"].stop()
        stack.stop()
        for link in links.values():
            link.stop()
