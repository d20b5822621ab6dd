"""Poison handling that cannot lose or strand an event, with two projectors on the queue.

A poisoned event is dead-lettered after a bounded number of tries, counted where every projector
sees them; its product is held and its later events are parked; once the fixed event is replayed
the product catches up in order, whatever happens on the way (a second poisoned event, replays in
either order, a projector that died half-way through releasing the hold, a parked copy that is
itself unreadable, a message that is not even JSON).

Crashes are staged two ways: by the state a crash leaves behind (a projector that died at that
point leaves exactly these documents and messages), and, in tests/e2e/test_crash_recovery.py, by
real SIGKILLs at failpoints.
"""

from __future__ import annotations

import json
import logging
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from support import Background

from cqrs_demo.connections import amqp_connection
from cqrs_demo.consistency import compare
from cqrs_demo.messaging import topology
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.read import projection
from cqrs_demo.read.kept_gaps import KEEP_SECONDS
from cqrs_demo.read.projection import project
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import outbox

pytestmark = pytest.mark.timeout(120)

POISONED = "poisoned"
PARKED = "parked"


# -- helpers -----------------------------------------------------------------------------------


def _money(body: dict) -> str:
    import simplejson

    return simplejson.dumps(body, use_decimal=True)


def create(client, n: int) -> int:
    body = {"name": f"P{n}", "description": "d", "price": Decimal("10.00"), "quantity": 100, "sku": f"POISON-{n}"}
    response = client.post("/api/products", data=_money(body), content_type="application/json")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def update(client, pid: int, quantity: int) -> int:
    response = client.patch(f"/api/products/{pid}", json={"quantity": quantity, "description": f"q{quantity}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["version"]


def poison(engine, pid: int, version: int) -> dict:
    """Corrupt one event's payload in the outbox (a producer bug); the original, for the fix."""
    where = (outbox.c.aggregate_id == pid) & (outbox.c.aggregate_version == version)
    with engine.begin() as conn:
        original = conn.scalar(sa.select(outbox.c.payload).where(where))
        conn.execute(outbox.update().where(where).values(payload={**original, "price": "twelve"}))
    return original


def fix(engine, pid: int, version: int, original: dict) -> None:
    where = (outbox.c.aggregate_id == pid) & (outbox.c.aggregate_version == version)
    with engine.begin() as conn:
        conn.execute(outbox.update().where(where).values(payload=original))


def read_version(db, pid: int) -> int:
    doc = db[projection.PRODUCTS].find_one({"_id": pid}, {"version": 1})
    return doc["version"] if doc else 0


def write_version(engine, pid: int) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.max(outbox.c.aggregate_version)).where(outbox.c.aggregate_id == pid))


def outbox_event(engine, pid: int, version: int):
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(outbox).where((outbox.c.aggregate_id == pid) & (outbox.c.aggregate_version == version))
        ).one()
    return event_from_row(row)


def start(settings, projectors: int = 2, relay: bool = True) -> list[Background]:
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.read.projector import Projector

    workers = [Background(f"projector-{n}", Projector(settings)).start() for n in range(projectors)]
    if relay:
        workers.append(Background("relay", OutboxRelay(settings)).start())
    return workers


def halt(workers: list[Background]) -> None:
    for worker in workers:
        worker.halt()


def wait_caught_up(engine, db, pid: int, timeout: float = 30) -> None:
    target = write_version(engine, pid)
    try:
        wait_until(lambda: read_version(db, pid) == target, timeout, what=f"product {pid} at version {target}")
    except WaitTimeout:
        pass
    assert read_version(db, pid) == target, (read_version(db, pid), target, list(db[PARKED].find()))


def wait_released(db, pid: int, timeout: float = 20) -> None:
    try:
        wait_until(lambda: db[POISONED].find_one({"_id": f"product:{pid}"}) is None, timeout, what="the hold released")
    except WaitTimeout:
        pass
    assert db[POISONED].find_one({"_id": f"product:{pid}"}) is None, list(db[POISONED].find())
    assert db[PARKED].count_documents({"key": f"product:{pid}"}) == 0, list(db[PARKED].find())


def assert_equal(engine, db) -> None:
    result: dict = {}

    def equal() -> bool:
        result.update(compare(engine, db))
        return result["equal"]

    try:
        wait_until(equal, 30, what="read model equal to write model")
    except WaitTimeout:
        pass
    assert result["equal"], json.dumps(result["differences"][:10], default=str)


def held_and_parked(engine, db, broker, pid: int, poisoned_versions: list[int]) -> list:
    """Wait for each poisoned version to be dead-lettered and every later event to be parked."""
    dead = broker.dead_letters(len(poisoned_versions))
    assert sorted(json.loads(body)["aggregate_version"] for _, body in dead) == poisoned_versions, dead
    later = write_version(engine, pid) - max(poisoned_versions)
    wait_until(lambda: db[PARKED].count_documents({"key": f"product:{pid}"}) >= later, 20, what="later events parked")
    assert db[POISONED].find_one({"_id": f"product:{pid}"}) is not None
    assert read_version(db, pid) == min(poisoned_versions) - 1
    return dead


# -- two poisoned events in a row, replayed in either order ------------------------------------


@pytest.mark.parametrize("replay_order", ["in order", "reversed"])
def test_two_poisoned_events_in_a_row_catch_up_whatever_the_replay_order(
    settings, command_client, write_engine, read_db, broker, replay_order
):
    pid = create(command_client, 1)
    other = create(command_client, 2)
    for q in range(4):
        update(command_client, pid, q)  # versions 2..5
    originals = {v: poison(write_engine, pid, v) for v in (2, 3)}
    workers = start(settings)
    try:
        update(command_client, other, 7)
        dead = held_and_parked(write_engine, read_db, broker, pid, [2, 3])
        wait_until(lambda: read_version(read_db, other) == 2, 20, what="other products flow on")

        for version, original in originals.items():
            fix(write_engine, pid, version, original)
        dead.sort(key=lambda d: json.loads(d[1])["aggregate_version"], reverse=replay_order == "reversed")
        for properties, body in dead:
            broker.replay(properties, outbox_event(write_engine, pid, json.loads(body)["aggregate_version"]))

        wait_caught_up(write_engine, read_db, pid)
        wait_released(read_db, pid)
        update(command_client, pid, 99)  # and the stream flows on, unheld
        wait_caught_up(write_engine, read_db, pid)
        assert_equal(write_engine, read_db)
    finally:
        halt(workers)


# -- the hold is released however far a crashed projector got --------------------------------


CRASH_POINTS = ["replay applied", "parked applied, not deleted", "parked deleted, hold not released",
                "hold released, a copy parked meanwhile"]


@pytest.mark.parametrize("crash_point", CRASH_POINTS)
def test_a_projector_that_starts_finishes_a_release_another_one_died_in(
    settings, command_client, write_engine, read_db, broker, crash_point
):
    """A projector died while releasing a hold: the next one to start finishes the job.

    The state each crash point leaves: the replayed event applied (and its message acknowledged,
    or redelivered later as a duplicate, either way no longer in hand); then perhaps the parked
    events applied; then perhaps their parked copies deleted. The hold itself is still there.
    """
    pid = create(command_client, 1)
    for q in range(3):
        update(command_client, pid, q)  # versions 2..4
    original = poison(write_engine, pid, 2)
    workers = start(settings, projectors=1)
    try:
        held_and_parked(write_engine, read_db, broker, pid, [2])
    finally:
        halt(workers)

    fix(write_engine, pid, 2, original)
    assert project(read_db, outbox_event(write_engine, pid, 2)) is Outcome.APPLIED
    if crash_point in ("parked applied, not deleted", "parked deleted, hold not released"):
        for version in (3, 4):
            assert project(read_db, outbox_event(write_engine, pid, version)) is Outcome.APPLIED
    if crash_point == "parked deleted, hold not released":
        read_db[PARKED].delete_many({"key": f"product:{pid}"})
    if crash_point == "hold released, a copy parked meanwhile":
        # The releaser deleted the hold and died before looking for copies parked meanwhile.
        read_db[POISONED].delete_many({"_id": f"product:{pid}"})

    workers = start(settings, projectors=1, relay=False)
    try:
        wait_caught_up(write_engine, read_db, pid)
        wait_released(read_db, pid)
    finally:
        halt(workers)
    assert_equal(write_engine, read_db)


def test_a_running_projector_releases_a_hold_when_it_applies_the_held_products_next_event(
    settings, command_client, write_engine, read_db, broker
):
    """A hold left behind with nothing parked (its releaser died): the next event releases it."""
    pid = create(command_client, 1)
    update(command_client, pid, 1)
    original = poison(write_engine, pid, 2)
    workers = start(settings, projectors=2)
    try:
        held_and_parked(write_engine, read_db, broker, pid, [2])
        fix(write_engine, pid, 2, original)
        # The replay is applied by someone who then died: the event is in, the hold is not released.
        assert project(read_db, outbox_event(write_engine, pid, 2)) is Outcome.APPLIED
        update(command_client, pid, 2)
        wait_caught_up(write_engine, read_db, pid)
        wait_released(read_db, pid)
        update(command_client, pid, 3)
        wait_caught_up(write_engine, read_db, pid)
    finally:
        halt(workers)
    assert_equal(write_engine, read_db)


def test_a_hold_made_elsewhere_since_the_last_tick_is_released_by_the_next_tick(
    settings, command_client, write_engine, read_db
):
    """A running projector that saw no hold does not look for one after each flush; when another
    projector holds a product and this one then applies the awaited version, its tick releases it."""
    from cqrs_demo.messaging.headers import StreamRef
    from cqrs_demo.read import poison as holds
    from cqrs_demo.read.projector import TICK_SECONDS

    pid = create(command_client, 1)
    workers = start(settings, projectors=1)
    try:
        wait_caught_up(write_engine, read_db, pid)
        time.sleep(TICK_SECONDS * 3)  # ticks that found no hold
        holds.hold(read_db, StreamRef("product", pid, 2), "held by another projector")
        update(command_client, pid, 2)
        wait_caught_up(write_engine, read_db, pid)
        wait_released(read_db, pid)
    finally:
        halt(workers)
    assert_equal(write_engine, read_db)


# -- unreadable messages and parked copies ----------------------------------------------------


def test_the_relay_names_each_messages_stream_in_its_headers(settings, command_client, write_engine):
    from cqrs_demo.messaging.relay import OutboxRelay

    pid = create(command_client, 1)
    update(command_client, pid, 5)
    connection = amqp_connection(settings)
    try:
        channel = connection.channel()
        topology.declare_projector_queue(channel, settings)
        relay = Background("relay", OutboxRelay(settings)).start()
        try:
            messages = []

            def two_messages() -> bool:
                method, properties, body = channel.basic_get(settings.projector_queue, auto_ack=True)
                if method is not None:
                    messages.append((properties, json.loads(body)))
                return len(messages) == 2

            wait_until(two_messages, 15, what="two messages published")
        finally:
            relay.halt()
    finally:
        connection.close()
    for properties, event in messages:
        headers = properties.headers
        assert headers["aggregate_type"] == "product" and headers["aggregate_id"] == pid, headers
        assert headers["aggregate_version"] == event["aggregate_version"]
        assert headers["event_id"] == event["event_id"] == properties.message_id
        assert headers["schema_version"] == event["schema_version"]


def test_a_message_that_is_not_json_is_dead_lettered_and_holds_its_product(
    settings, command_client, write_engine, read_db, broker
):
    pid = create(command_client, 1)
    for q in range(3):
        update(command_client, pid, q)  # versions 2..4
    events = {v: outbox_event(write_engine, pid, v) for v in range(1, 5)}
    workers = start(settings, relay=False)
    try:
        for version, event in events.items():
            headers = {"aggregate_type": "product", "aggregate_id": pid, "aggregate_version": version,
                       "event_id": event.event_id, "schema_version": 1, "position": event.position}
            body = b"\x00 not json at all" if version == 2 else event.to_json()
            broker.publish(body, headers, event.event_id)
        [(properties, body)] = broker.dead_letters(1)
        assert body == b"\x00 not json at all"
        # Held, and its later events parked instead of being retried for ever as gaps.
        wait_until(lambda: read_db[PARKED].count_documents({"key": f"product:{pid}"}) == 2, 20, what="parked")
        assert read_db[POISONED].find_one({"_id": f"product:{pid}"}) is not None
        assert read_version(read_db, pid) == 1

        broker.replay(properties, events[2])
        wait_caught_up(write_engine, read_db, pid)
        wait_released(read_db, pid)
    finally:
        halt(workers)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_parked_copy_that_is_unreadable_stays_parked_and_keeps_the_hold(
    settings, command_client, write_engine, read_db, broker, caplog
):
    pid = create(command_client, 1)
    for q in range(3):
        update(command_client, pid, q)  # versions 2..4
    original = poison(write_engine, pid, 2)
    workers = start(settings, projectors=1)
    try:
        [(properties, _)] = held_and_parked(write_engine, read_db, broker, pid, [2])
        # One parked copy is damaged in storage.
        damaged = read_db[PARKED].find_one({"key": f"product:{pid}", "version": 4})
        read_db[PARKED].update_one({"_id": damaged["_id"]}, {"$set": {"event": "{truncated"}})
        fix(write_engine, pid, 2, original)
        with caplog.at_level(logging.ERROR):
            broker.replay(properties, outbox_event(write_engine, pid, 2))
            wait_until(lambda: read_version(read_db, pid) == 3 or not workers[0].thread.is_alive(), 20,
                       what="the parked event before the damaged one applied")
            assert workers[0].thread.is_alive(), "the projector died on an unreadable parked copy"
            wait_until(lambda: damaged["_id"] in caplog.text, 10, what="the unreadable copy reported")
        assert read_version(read_db, pid) == 3
        assert read_db[PARKED].find_one({"_id": damaged["_id"]}) is not None
        assert read_db[POISONED].find_one({"_id": f"product:{pid}"}) is not None
        # Other products flow on.
        other = create(command_client, 2)
        wait_until(lambda: read_version(read_db, other) == 1, 20, what="another product projected")
        assert workers[0].thread.is_alive()
    finally:
        halt(workers)


# -- attempts are counted where every projector sees them --------------------------------------


def test_two_projectors_give_a_poisoned_event_its_attempts_in_all_not_each(
    settings, command_client, write_engine, read_db, broker, caplog
):
    pid = create(command_client, 1)
    update(command_client, pid, 1)
    poison(write_engine, pid, 2)
    event_id = outbox_event(write_engine, pid, 2).event_id
    with caplog.at_level(logging.WARNING, logger="cqrs_demo.read.projector"):
        workers = start(settings, projectors=2)
        try:
            held_and_parked(write_engine, read_db, broker, pid, [2])
        finally:
            halt(workers)
    tries = [r for r in caplog.records if event_id in r.getMessage()
             and ("failed (attempt" in r.getMessage() or "dead-lettering" in r.getMessage())]
    assert len(tries) == settings.poison_attempts, [r.getMessage() for r in tries]


def test_gap_requeues_are_not_counted_as_failed_attempts(settings, command_client, write_engine, read_db, broker):
    """Version 2 waits as a gap many more times than the attempts allowed, in hand and requeued, then applies."""
    pid = create(command_client, 1)
    update(command_client, pid, 1)
    first, second = outbox_event(write_engine, pid, 1), outbox_event(write_engine, pid, 2)
    workers = start(settings, projectors=2, relay=False)
    try:
        broker.publish(second.to_json(), {"aggregate_type": "product", "aggregate_id": pid,
                                           "aggregate_version": 2, "event_id": second.event_id}, second.event_id)
        wait_until(lambda: (read_db[projection.STATUS].find_one({"_id": "projector"}) or {}).get("gaps", 0)
                   >= 4 * settings.poison_attempts, 20, what="many gap retries")
        time.sleep((settings.poison_attempts + 1) * KEEP_SECONDS)  # handed back to the queue as often
        broker.publish(first.to_json(), {"aggregate_type": "product", "aggregate_id": pid,
                                          "aggregate_version": 1, "event_id": first.event_id}, first.event_id)
        wait_until(lambda: read_version(read_db, pid) == 2, 20, what="both applied")
        assert broker.dead_letters(1, timeout=0.5) == []
        assert read_db[POISONED].count_documents({}) == 0
    finally:
        halt(workers)
