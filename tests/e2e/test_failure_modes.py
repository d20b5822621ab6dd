"""Every failure-mode guarantee of the stack, proved on the real servers with a LabStack per test.

Each test starts the whole stack as separate processes in a fresh namespace (its own MongoDB
stand-in, the fault proxy in front of RabbitMQ, the projection audit on), injects one fault as
it happens for real, and checks the guarantee against PostgreSQL, the record of what happened:
nothing lost, nothing applied twice, per-product order kept, and in outbox mode the read model
equal to the write model at the end. No mocks; bounded polling instead of fixed sleeps.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

import pytest
import sqlalchemy as sa

from cqrs_demo.lab import anomalies, faults, scenarios
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.load import LoadGenerator
from cqrs_demo.polling import wait_until
from cqrs_demo.read import projection
from cqrs_demo.runtime import health
from cqrs_demo.write.schema import order_lines, orders, outbox

from lab_fixtures import (
    LabStacks,
    assert_equal,
    cli,
    extra_process,
    pg_versions,
    read_version,
    relay_lock_holders,
    relay_sessions,
    status,
    unpublished,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
def labs(base_settings, tmp_path):
    stacks = LabStacks(base_settings, tmp_path)
    try:
        yield stacks
    finally:
        stacks.teardown()


# -- helpers -------------------------------------------------------------------------------------


class Burst:
    """A LoadGenerator run in a background thread, so that a fault can land in the middle of it."""

    def __init__(self, stack, commands: int, rate: float, products: int = 10) -> None:
        self.load = LoadGenerator(stack, products=products)
        self.load.prepare()
        self.commands, self.rate = commands, rate
        self.frame = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="burst", daemon=True)

    def _run(self) -> None:
        try:
            self.frame = self.load.run(commands=self.commands, rate=self.rate, threads=8, progress=False,
                                       wait_visible=False)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def start(self) -> "Burst":
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def join(self, timeout: float = 60):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the burst did not finish"
        assert self.error is None, repr(self.error)
        bad = self.frame[self.frame["status"] != 200]
        assert bad.empty, bad.to_string()
        return self.frame


def assert_nothing_lost_or_doubled(stack) -> dict:
    """No event lost, none applied twice, none out of order, no product stale: against PostgreSQL.

    A crash (or a MongoDB restart) between the projector's write and its audit write leaves an
    applied event whose only audit record is the redelivered duplicate; `anomalies.measure`
    counts a duplicate as applied, and this checks the documents agree: each such event's
    document stands at or past its version.
    """
    observed = anomalies.measure(stack)
    missing = lost_events(stack)
    really_lost = [e for e in missing if not e["applied, audit record missing"]]
    assert not really_lost, json.dumps({**observed, "lost": really_lost}, default=str)
    assert observed["events lost"] == 0, observed
    assert observed["events applied twice"] == 0, observed
    assert observed["events applied out of order"] == 0, observed
    assert observed["products stale at the end"] == 0, observed
    return observed


def lost_events(stack) -> list[dict]:
    """What the audit says of each event `anomalies.measure` counts as lost, and where its document is."""
    from cqrs_demo.read.projector import APPLICATIONS

    applying = anomalies.APPLYING
    audited = defaultdict(list)
    for a in stack.read_db[APPLICATIONS].find({}, {"event_id": 1, "outcome": 1, "at": 1}):
        audited[a["event_id"]].append(a["outcome"])
    lost = []
    for event in outbox_events(stack):
        if not any(o in applying for o in audited[event.event_id]):
            collection = projection.PRODUCTS if event.aggregate_type == "product" else projection.ORDERS
            doc = stack.read_db[collection].find_one({"_id": event.aggregate_id}, {"version": 1}) or {}
            read = doc.get("version") or 0
            lost.append({"position": event.position, "type": event.type, "id": event.aggregate_id,
                         "version": event.aggregate_version, "read version": read,
                         "audit": audited[event.event_id],
                         "applied, audit record missing": read >= event.aggregate_version
                         and "duplicate" in audited[event.event_id]})
    return lost


def outbox_events(stack, where=None) -> list:
    from cqrs_demo.write.outbox import event_from_row

    query = sa.select(outbox).order_by(outbox.c.position)
    if where is not None:
        query = query.where(where)
    with stack.engine.connect() as conn:
        return [event_from_row(row) for row in conn.execute(query)]


def projector_dead(stack) -> bool:
    return not stack.stack.processes["projector"].alive()


# -- 1. the broker goes away in the middle of a burst: the dual-write lesson ----------------------


def test_broker_outage_mid_burst_outbox_loses_nothing(labs):
    stack = labs.start()
    result = scenarios.outage_burst(stack, commands=200, rate=100, progress=False)

    assert result.table["as predicted"].all(), result.table.to_string()
    assert result.observed["events lost"] == 0, result.table.to_string()
    assert result.observed["events applied twice"] == 0
    assert (result.load["status"] == 200).all()  # the outage never reached a client
    assert result.outage[1] > result.outage[0]
    assert_equal(stack, 60)


def test_broker_outage_mid_burst_naive_publish_loses_events(labs):
    stack = labs.start(delivery="naive")
    result = scenarios.outage_burst(stack, commands=200, rate=100, progress=False)

    assert result.table["as predicted"].all(), result.table.to_string()
    # Every client was told 200, yet events are gone for good: the dual write.
    assert (result.load["status"] == 200).all()
    assert result.observed["events lost"] > 0, result.table.to_string()
    assert result.observed["products stale at the end"] >= 1
    assert result.notes, "the read model cannot equal the write model after losing events"
    assert not projector_dead(stack)  # it lost events, not its life: it reconnected


# -- 2. the relay dies between the broker's confirm and marking the rows ---------------------------


def test_relay_killed_between_publish_and_mark_delivers_twice_applies_once(labs):
    stack = labs.start()
    client = WorkbenchClient.for_stack(stack)
    faults.arm(stack, "relay.before_mark")

    created = client.create_product("Crash between confirm and mark", "12.50", 5, "SKU-RELAY-MARK")
    assert created.status == 201, created
    wait_until(lambda: not stack.stack.processes["relay"].alive(), timeout=15)
    assert unpublished(stack) == 1  # the broker has it, the outbox does not know

    stack.resume("relay")
    wait_until(lambda: unpublished(stack) == 0, timeout=15)  # republished, and this time marked
    assert_equal(stack, 30)
    # The republished copy arrives and is recognised as a duplicate: delivered twice...
    projected = wait_until(lambda: (body := client.projection().body)["duplicates"] >= 1 and body, timeout=15)
    assert projected["applied"] == 1, projected
    # ... applied once.
    observed = assert_nothing_lost_or_doubled(stack)
    assert observed["events committed"] == 1
    assert client.product(created.body["id"], min_version=1).body["name"] == "Crash between confirm and mark"


# -- 3. the projector dies mid-batch --------------------------------------------------------------


def test_projector_killed_mid_batch_loses_nothing_and_applies_once(labs):
    stack = labs.start(projector_prefetch=50)
    burst = Burst(stack, commands=200, rate=75)
    assert_equal(stack, 30)

    # First death: right after a change reached MongoDB, before RabbitMQ heard the ack.
    faults.arm(stack, "projector.before_ack")
    burst.start()
    wait_until(lambda: projector_dead(stack), timeout=15)
    assert burst.running
    stack.resume("projector")

    # Second death: a SIGKILL while it drains the backlog, with a prefetched batch in hand.
    applied = status(stack).get("applied", 0)
    wait_until(lambda: status(stack).get("applied", 0) >= applied + 20, timeout=20, interval=0.005)
    stack.kill("projector")
    assert projector_dead(stack)
    stack.resume("projector")

    burst.join()
    assert_equal(stack, 60)
    assert_nothing_lost_or_doubled(stack)
    assert status(stack).get("duplicates", 0) >= 1  # the unacknowledged message came back


# -- 4. a poison message ----------------------------------------------------------------------------


def test_poison_message_is_dead_lettered_holds_its_product_and_replays_in_order(labs):
    stack = labs.start()
    client = WorkbenchClient.for_stack(stack)
    ids = [client.create_product(f"Product {n}", "10.00", 100, f"SKU-POISON-{n}").body["id"] for n in range(4)]
    poisoned, others = ids[0], ids[1:]
    assert_equal(stack, 30)

    poison = faults.inject_poison(stack, client, poisoned)
    poison_version = pg_versions(stack)[poisoned]
    later = [client.update_product(poisoned, quantity=90 - n) for n in range(2)]
    assert all(exchange.status == 200 for exchange in later)
    other_versions = {}
    for pid in others:
        for n in range(2):
            exchange = client.update_product(pid, quantity=50 + n, description=f"after the poison {n}")
            assert exchange.status == 200, exchange
            other_versions[pid] = exchange.body["version"]

    # Dead-lettered after a bounded number of attempts, and only that one message.
    wait_until(lambda: projector_dead(stack) or faults.dead_letters(stack).shape[0] >= 1, timeout=30)
    assert not projector_dead(stack), "the projector died on the poison message:\n" + stack.logs("projector", 25)
    dead = faults.dead_letters(stack)
    assert dead.shape[0] == 1, dead.to_string()
    [row] = dead.to_dict("records")
    assert (row["aggregate_id"], row["version"], row["reason"]) == (poisoned, poison_version, "rejected"), row
    attempts = stack.settings.poison_attempts
    log = stack.logs("projector", lines=2000)
    assert f"after {attempts} attempts" in log, log[-2000:]
    assert log.count(f"event {row['message_id']} failed (attempt") == attempts - 1, log[-2000:]

    # Other products flow on, through the query service.
    for pid, version in other_versions.items():
        seen = client.product(pid, min_version=version)
        assert seen.status == 200 and seen.body["version"] == version, seen
    # The poisoned product's later updates are parked behind it, not applied past it.
    wait_until(lambda: status(stack).get("parked", 0) >= len(later), timeout=20)
    assert read_version(stack, poisoned) == poison_version - 1 < pg_versions(stack)[poisoned]
    assert client.product(poisoned).body["version"] == poison_version - 1
    assert faults.dead_letters(stack).shape[0] == 1  # still there: nothing retries it forever
    assert status(stack).get("dead_lettered", 0) == 1

    # The producer is fixed and the dead letter replayed: the product catches up, in order.
    poison.fix()
    assert faults.replay_dead_letters(stack) == 1
    target = pg_versions(stack)[poisoned]
    wait_until(lambda: read_version(stack, poisoned) == target, timeout=20)
    seen = client.product(poisoned, min_version=target).body
    assert seen["quantity"] == 89 and seen["description"] == "poisoned update", seen
    assert_equal(stack, 30)
    assert faults.dead_letters(stack).empty
    assert stack.read_db["poisoned"].count_documents({}) == 0
    assert stack.read_db["parked"].count_documents({}) == 0
    observed = anomalies.measure(stack)
    assert observed["events lost"] == observed["events applied twice"] == 0, observed
    assert observed["events applied out of order"] == 0, observed


# -- 5. two relays at once --------------------------------------------------------------------------


def test_two_relays_one_active_standby_takes_over(labs):
    stack = labs.start()
    client = WorkbenchClient.for_stack(stack)
    own_sessions = relay_sessions(stack)
    extra = extra_process(stack.settings, stack.stack.directory, "relay")
    try:
        # The standby is connected and waiting, and only one relay holds the lock.
        wait_until(lambda: relay_sessions(stack) > own_sessions, timeout=20)
        assert extra.alive(), extra.log()
        wait_until(lambda: health.active_relays(stack.settings, stack.engine) == 1, timeout=5)
        [old_holder] = relay_lock_holders(stack)
        assert old_holder in relay_lock_holders(stack) and extra.alive()

        burst = Burst(stack, commands=150, rate=150, products=10)
        burst.start().join()
        assert_equal(stack, 30)
        observed = assert_nothing_lost_or_doubled(stack)
        assert observed["events applied out of order"] == 0
        projected = client.projection().body
        assert projected["duplicates"] == 0 and projected["gaps"] == 0, projected  # nothing published twice
        assert health.active_relays(stack.settings, stack.engine) == 1

        stack.kill("relay")
        assert not stack.stack.processes["relay"].alive()
        killed_at = time.monotonic()
        wait_until(lambda: (h := relay_lock_holders(stack)) and old_holder not in h, timeout=10)
        takeover = time.monotonic() - killed_at
        assert takeover < 5, f"the standby took {takeover:.1f}s to take over"
        assert len(relay_lock_holders(stack)) == 1
        wait_until(lambda: health.active_relays(stack.settings, stack.engine) == 1, timeout=5)
        assert extra.alive(), extra.log()

        later = Burst(stack, commands=60, rate=100, products=5)
        later.start().join()
        assert_equal(stack, 30)
        assert_nothing_lost_or_doubled(stack)
        assert extra.alive(), extra.log()
    finally:
        extra.stop()


# -- 6. the MongoDB stand-in restarts mid-stream ------------------------------------------------------


def test_mongo_restart_mid_stream_loses_nothing(labs):
    stack = labs.start()
    burst = Burst(stack, commands=300, rate=75)
    assert_equal(stack, 30)
    burst.start()
    wait_until(lambda: status(stack).get("applied", 0) >= 10 + 30, timeout=15)
    assert burst.running
    faults.restart_mongo(stack)
    burst.join()

    assert_equal(stack, 60)
    assert_nothing_lost_or_doubled(stack)


# -- 7. duplicate delivery, with and without deduplication ---------------------------------------------


def _order_and_its_events(stack):
    client = WorkbenchClient.for_stack(stack)
    a = client.create_product("Widget", "4.00", 100, "SKU-DUP-A").body["id"]
    b = client.create_product("Gadget", "7.50", 100, "SKU-DUP-B").body["id"]
    placed = client.place_order("alice", [{"product_id": a, "quantity": 3}, {"product_id": b, "quantity": 2}])
    assert placed.status == 201, placed
    order_id = placed.body["id"]
    assert_equal(stack, 30)
    events = [
        event for event in outbox_events(stack)
        if (event.aggregate_type == "order" and event.aggregate_id == order_id)
        or event.payload.get("order_id") == order_id
    ]
    assert len(events) == 3  # order placed, and one stock change for each product
    return client, [event.position for event in events]


def _pg_units_sold(stack) -> dict[int, int]:
    units: dict[int, int] = defaultdict(int)
    with stack.engine.connect() as conn:
        rows = conn.execute(
            sa.select(order_lines.c.product_id, order_lines.c.quantity)
            .join(orders, orders.c.id == order_lines.c.order_id)
            .where(orders.c.status == "placed")
        )
        for product_id, quantity in rows:
            units[product_id] += quantity
    return dict(units)


def _top_units(client) -> dict[int, int]:
    return {row["product_id"]: row["units_sold"] for row in client.top_products().body}


def test_duplicate_delivery_with_dedup_changes_nothing(labs):
    stack = labs.start()
    client, positions = _order_and_its_events(stack)
    top_before = client.top_products().body
    assert _top_units(client) == _pg_units_sold(stack)
    duplicates = status(stack).get("duplicates", 0)

    assert faults.redeliver(stack, positions) == 3
    wait_until(lambda: status(stack).get("duplicates", 0) >= duplicates + 3, timeout=15)
    assert client.top_products().body == top_before
    assert _top_units(client) == _pg_units_sold(stack)
    assert_equal(stack, 10)
    assert_nothing_lost_or_doubled(stack)


def test_duplicate_delivery_without_dedup_doubles_sales(labs):
    stack = labs.start(projector_dedup=False)
    client, positions = _order_and_its_events(stack)
    pg_units = _pg_units_sold(stack)
    assert _top_units(client) == pg_units

    assert faults.redeliver(stack, positions) == 3
    doubled = {pid: 2 * units for pid, units in pg_units.items()}
    wait_until(lambda: _top_units(client) == doubled, timeout=15)
    # What deduplication buys: without it, a redelivered sale is counted again.
    result = assert_not_equal_only_in_sales(stack)
    assert {d["id"] for d in result["differences"]} == set(pg_units)
    assert anomalies.measure(stack)["events applied twice"] == 3


def assert_not_equal_only_in_sales(stack) -> dict:
    from cqrs_demo.consistency import compare

    result = compare(stack.engine, stack.read_db)
    assert not result["equal"]
    assert {(d["kind"], d["what"]) for d in result["differences"]} == {("mismatch", "sales")}, result
    return result


# -- 8. rebuilding the read model from the event log -----------------------------------------------


def test_rebuild_from_event_log_then_check_is_equal(labs):
    stack = labs.start()
    client = WorkbenchClient.for_stack(stack)
    burst = Burst(stack, commands=200, rate=200)
    burst.start().join()
    ids = burst.load.prepare()
    for n in range(5):
        placed = client.place_order(f"customer {n}", [{"product_id": ids[n], "quantity": 2},
                                                      {"product_id": ids[n + 1], "quantity": 1}])
        assert placed.status == 201, placed
    client.cancel_order(placed.body["id"])
    assert_equal(stack, 30)
    with stack.engine.connect() as conn:
        committed = conn.scalar(sa.select(sa.func.count()).select_from(outbox))
    assert committed > 200

    rebuilt = cli(stack, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    counts = json.loads(rebuilt.stdout.strip().splitlines()[-1])
    assert sum(counts.values()) == committed, counts

    checked = cli(stack, "check", "--wait", "10")
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-2000:]
    report = json.loads(checked.stdout)
    assert report["equal"] is True and report["difference_count"] == 0, report
    assert_equal(stack, 10)
