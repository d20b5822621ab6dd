"""The read side's delivery guarantees, proved against the real servers: no mocks.

- Applying an event is idempotent and ordered: a duplicate or stale copy changes nothing, an
  event that arrives before its predecessor is a gap and is not applied.
- Duplicates published through RabbitMQ are counted and dropped.
- Hundreds of random commands converge: the read model equals the write model, and
  `cqrs-demo check` agrees.
- A message that is not an event is dead-lettered, and the projector keeps going.
- The relay never skips an outbox row that commits after rows with later positions.

Some tests pin down defects that were found and fixed: a batch whose every event fails, a
schema check that locked the outbox, applied events misreported by concurrent projectors, and
a relay count that included other locks.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from decimal import Decimal

import pika
import pytest
from support import Background
import sqlalchemy as sa

from cqrs_demo.connections import amqp_connection
from cqrs_demo.consistency import compare, wait_until_equal
from cqrs_demo.messaging import topology
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.read import projection
from cqrs_demo.read.projection import project
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.runtime.processes import child_environment
from cqrs_demo.write import products
from cqrs_demo.write.commands import ProductFields
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import outbox
from cqrs_demo.write.transaction import command_transaction

pytestmark = pytest.mark.timeout(120)

# Fields the projection stamps at projection time: two correct projections of the same events
# differ only in these.
TIMING_FIELDS = {"projected_at", "trace"}


# -- helpers -----------------------------------------------------------------------------------


def product_body(n: int, **overrides) -> dict:
    body = {
        "name": f"Product {n}",
        "description": f"description {n}",
        "price": Decimal(f"{n}.{n % 100:02d}"),
        "quantity": n % 50,
        "sku": f"SKU-{n:06d}",
    }
    body.update(overrides)
    return body


def post(client, body: dict):
    return client.post("/api/products", data=_dumps(body), content_type="application/json")


def put(client, pid: int, body: dict, if_match: int | None = None):
    headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
    return client.put(f"/api/products/{pid}", data=_dumps(body), content_type="application/json", headers=headers)


def patch(client, pid: int, body: dict, if_match: int | None = None):
    headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
    return client.patch(f"/api/products/{pid}", data=_dumps(body), content_type="application/json", headers=headers)


def delete(client, pid: int, if_match: int | None = None):
    headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
    return client.delete(f"/api/products/{pid}", headers=headers)


def _dumps(body: dict) -> str:
    # Money as an exact JSON number ("12.34"), never through a binary float.
    import simplejson

    return simplejson.dumps(body, use_decimal=True)


def outbox_events(engine, aggregate_id: int | None = None) -> list:
    query = sa.select(outbox).order_by(outbox.c.position)
    if aggregate_id is not None:
        query = query.where(outbox.c.aggregate_id == aggregate_id)
    with engine.connect() as conn:
        return [event_from_row(row) for row in conn.execute(query)]


def outbox_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(outbox).order_by(outbox.c.position)).all()


def snapshot(db, pid: int) -> dict:
    """Everything the read model holds for one product, exactly as stored."""
    return {
        "product": db[projection.PRODUCTS].find_one({"_id": pid}),
        "sales": db[projection.SALES].find_one({"_id": pid}),
    }


def without_timing(snap: dict) -> dict:
    return {
        name: None if doc is None else {k: v for k, v in doc.items() if k not in TIMING_FIELDS}
        for name, doc in snap.items()
    }


def status(db) -> dict:
    return db[projection.STATUS].find_one({"_id": "projector"}) or {}


class Publisher:
    """A plain pika publisher to the namespace's exchange, with confirms and `mandatory`."""

    def __init__(self, settings) -> None:
        self.settings = settings
        self.connection = amqp_connection(settings)
        self.channel = self.connection.channel()
        # Idempotent, with the projector's own arguments: the queue exists even if the
        # projector thread has not declared it yet, so nothing we publish is unroutable.
        topology.declare_projector_queue(self.channel, settings)
        self.channel.confirm_delivery()

    def publish(self, body: bytes, routing_key: str, **properties) -> None:
        self.channel.basic_publish(
            exchange=self.settings.exchange,
            routing_key=routing_key,
            body=body,
            properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, **properties),
            mandatory=True,
        )

    def get_dead_letters(self, count: int, timeout: float = 10.0) -> list[bytes]:
        bodies: list[bytes] = []

        def all_taken() -> bool:
            while len(bodies) < count:
                method, _props, body = self.channel.basic_get(self.settings.dead_letter_queue, auto_ack=True)
                if method is None:
                    return False
                bodies.append(body)
            return True

        try:
            wait_until(all_taken, timeout, what=f"{count} dead letters")
        except WaitTimeout:
            pass  # the caller asserts on the ones that came
        return bodies

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


@pytest.fixture
def publisher(settings):
    pub = Publisher(settings)
    yield pub
    pub.close()


def open_transaction(engine, settings):
    return command_transaction(engine)


class HeldTransaction:
    """A command transaction that creates one product and stays open until released."""

    def __init__(self, engine, settings, sku: str) -> None:
        self.engine, self.settings, self.sku = engine, settings, sku
        self.ready = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()
        self.product: dict | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with open_transaction(self.engine, self.settings) as tx:
                self.product = products.create(
                    tx, ProductFields(name="late", price=Decimal("2"), quantity=1, sku=self.sku)
                )
                self.ready.set()
                self.release.wait(30)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.ready.set()
            self.done.set()

    def __enter__(self) -> "HeldTransaction":
        self.thread.start()
        assert self.ready.wait(10) and self.error is None, self.error
        return self

    def commit(self) -> None:
        self.release.set()
        assert self.done.wait(10) and self.error is None, self.error

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(10)


def relay_sessions(engine, settings, granted: bool) -> int:
    """How many of this namespace's relay sessions hold (granted) or wait for (not) any lock."""
    from cqrs_demo.messaging.relay import application_name

    with engine.connect() as conn:
        return conn.scalar(
            sa.text(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.granted = :granted AND a.application_name = :name"
            ),
            {"granted": granted, "name": application_name(settings)},
        )


def wait_equal(write_engine, read_db, timeout: float = 30) -> dict:
    """Equal, and every outbox row marked: the relay marks a batch only after all of it is confirmed,
    so the read model can be equal a moment before the last rows are marked."""
    result: dict = {}

    def settled() -> bool:
        result.update(compare(write_engine, read_db))
        return result["equal"] and result["unpublished_events"] == 0

    try:
        wait_until(settled, timeout, interval=0.1, what="the read model to equal the write model, all published")
    except WaitTimeout:
        pass  # the assertion shows the differences
    assert result["equal"], json.dumps(result, indent=2, default=str)
    return result


# -- 1. the same event twice, stale and out of order: applied once, in order ----------------------


def _three_versions(command_client, write_engine, n: int = 1):
    created = post(command_client, product_body(n))
    assert created.status_code == 201, created.get_json()
    pid = created.get_json()["id"]
    r2 = put(command_client, pid, product_body(n, name=f"Renamed {n}", price=Decimal("7.25")), if_match=1)
    assert r2.status_code == 200, r2.get_json()
    r3 = patch(command_client, pid, {"quantity": 42, "description": "v3"}, if_match=2)
    assert r3.status_code == 200, r3.get_json()
    events = outbox_events(write_engine, pid)
    assert [e.aggregate_version for e in events] == [1, 2, 3]
    return pid, events


def test_duplicate_stale_and_early_events_are_harmless(command_client, write_engine, read_db):
    pid, (v1, v2, v3) = _three_versions(command_client, write_engine)

    assert project(read_db, v1) is Outcome.APPLIED
    after_v1 = snapshot(read_db, pid)
    assert after_v1["product"]["version"] == 1 and after_v1["sales"]["version"] == 1

    # The same event again: acknowledged as a duplicate, not a single byte changes.
    assert project(read_db, v1) is Outcome.DUPLICATE
    assert snapshot(read_db, pid) == after_v1

    # Version 3 before version 2: a gap, not applied.
    assert project(read_db, v3) is Outcome.GAP
    assert snapshot(read_db, pid) == after_v1

    assert project(read_db, v2) is Outcome.APPLIED
    after_v2 = snapshot(read_db, pid)
    assert after_v2["product"]["version"] == 2
    assert after_v2["product"]["name"] == "Renamed 1" and after_v2["product"]["price_cents"] == 725

    # An older version after a newer one: a duplicate, never an overwrite.
    assert project(read_db, v1) is Outcome.DUPLICATE
    assert snapshot(read_db, pid) == after_v2

    assert project(read_db, v3) is Outcome.APPLIED
    after_v3 = snapshot(read_db, pid)
    assert after_v3["product"]["version"] == 3 and after_v3["sales"]["version"] == 3
    assert after_v3["product"]["quantity"] == 42 and after_v3["product"]["description"] == "v3"
    assert after_v3["product"]["name"] == "Renamed 1"

    for stale in (v2, v1, v3, v2, v3):
        assert project(read_db, stale) is Outcome.DUPLICATE
        assert snapshot(read_db, pid) == after_v3

    assert wait_until_equal(write_engine, read_db, timeout=0)["equal"]


def test_a_late_copy_cannot_resurrect_a_deleted_product(command_client, write_engine, read_db):
    pid, _ = _three_versions(command_client, write_engine)
    assert delete(command_client, pid, if_match=3).status_code == 200
    events = outbox_events(write_engine, pid)
    assert [e.aggregate_version for e in events] == [1, 2, 3, 4]
    for event in events:
        assert project(read_db, event) is Outcome.APPLIED
    tombstone = snapshot(read_db, pid)
    # (== True, not `is True`: the MongoDB wire stand-in may hand a boolean back as 1.)
    assert tombstone["product"]["deleted"] == True and tombstone["product"]["version"] == 4  # noqa: E712
    for event in events:
        assert project(read_db, event) is Outcome.DUPLICATE
        assert snapshot(read_db, pid) == tombstone
    assert compare(write_engine, read_db)["equal"]


def _deliver_until_done(db, deliveries: list) -> dict[str, int]:
    """A redelivering queue: a gap goes back to the end of the queue, like a nacked message."""
    counts = {"applied": 0, "duplicate": 0, "gap": 0}
    queue = list(deliveries)
    steps = 0
    while queue:
        steps += 1
        assert steps < 10_000, "delivery did not converge"
        event = queue.pop(0)
        outcome = project(db, event)
        counts[outcome.value] += 1
        if outcome is Outcome.GAP:
            queue.append(event)
    return counts


def test_shuffled_redelivered_streams_converge_to_in_order_result(command_client, write_engine, read_db):
    rng = random.Random(20240611)
    pids = []
    for n in range(1, 4):
        created = post(command_client, product_body(n))
        assert created.status_code == 201
        pids.append(created.get_json()["id"])
    for i in range(18):
        pid = rng.choice(pids)
        response = patch(command_client, pid, {"quantity": rng.randint(0, 999), "name": f"n{i}"})
        assert response.status_code == 200, response.get_json()
    assert delete(command_client, pids[0]).status_code == 200
    events = outbox_events(write_engine)

    # The reference: every event once, in outbox order.
    for event in events:
        assert project(read_db, event) is Outcome.APPLIED
    reference = {pid: without_timing(snapshot(read_db, pid)) for pid in pids}
    assert compare(write_engine, read_db)["equal"]

    for trial in range(4):
        for name in (projection.PRODUCTS, projection.SALES):
            read_db[name].delete_many({})
        # Every event at least once, some up to three times, in random order.
        deliveries = [e for e in events for _ in range(rng.choice([1, 1, 2, 3]))]
        rng.shuffle(deliveries)
        counts = _deliver_until_done(read_db, deliveries)
        assert counts["applied"] == len(events), (trial, counts)
        assert counts["duplicate"] == len(deliveries) - len(events), (trial, counts)
        assert {pid: without_timing(snapshot(read_db, pid)) for pid in pids} == reference, trial
        assert compare(write_engine, read_db)["equal"], trial


# -- 2. duplicates through RabbitMQ ---------------------------------------------------------------


def test_duplicates_published_to_the_exchange_are_dropped(
    command_client, write_engine, read_db, pipeline, publisher
):
    created = post(command_client, product_body(7))
    assert created.status_code == 201
    pid = created.get_json()["id"]
    assert patch(command_client, pid, {"name": "second"}, if_match=1).status_code == 200
    assert patch(command_client, pid, {"quantity": 3}, if_match=2).status_code == 200
    wait_equal(write_engine, read_db)
    wait_until(lambda: status(read_db).get("applied", 0) >= 3, 10, what="status applied >= 3")
    before_status = status(read_db)
    before_doc = without_timing(snapshot(read_db, pid))
    assert before_doc["product"]["version"] == 3

    rows = outbox_rows(write_engine)
    assert len(rows) == 3 and all(row.published_at is not None for row in rows)
    copies = 0
    for row in rows + rows[::-1]:  # each already-published event again, then stale first
        event = event_from_row(row)
        publisher.publish(event.to_json(), event.routing_key, message_id=event.event_id, type=event.type)
        copies += 1

    wait_until(
        lambda: status(read_db).get("duplicates", 0) >= before_status.get("duplicates", 0) + copies,
        15,
        what=f"{copies} more duplicates in projection_status",
    )
    after_status = status(read_db)
    assert after_status.get("duplicates", 0) == before_status.get("duplicates", 0) + copies
    assert after_status["applied"] == before_status["applied"]
    assert after_status.get("gaps", 0) == before_status.get("gaps", 0)
    assert without_timing(snapshot(read_db, pid)) == before_doc
    assert compare(write_engine, read_db)["equal"]
    assert pipeline["projector"].counts.get("dead_lettered", 0) == 0


# -- 3. convergence under random commands ----------------------------------------------------------


class Model:
    """What the write side must answer to each command, so that every status is predicted."""

    def __init__(self) -> None:
        self.products: dict[int, dict] = {}  # id -> {"version": v, "sku": s}
        self.deleted: set[int] = set()
        self.next_sku = 0

    def fresh_sku(self) -> str:
        self.next_sku += 1
        return f"RND-{self.next_sku:05d}"

    def sku_taken(self, sku: str, by: int | None = None) -> bool:
        return any(p["sku"] == sku for pid, p in self.products.items() if pid != by)


def _random_command(client, model: Model, rng: random.Random, n: int) -> tuple[str, int, int]:
    """Send one random command; return (what, expected status, actual status)."""
    live = sorted(model.products)
    roll = rng.random()
    if roll < 0.25 or not live:
        duplicate = live and rng.random() < 0.15
        sku = model.products[rng.choice(live)]["sku"] if duplicate else model.fresh_sku()
        response = post(client, product_body(n, sku=sku))
        expected = 409 if duplicate else 201
        if response.status_code == 201:
            body = response.get_json()
            model.products[body["id"]] = {"version": body["version"], "sku": sku}
        return "create", expected, response.status_code

    # An id that exists, one that was deleted, or one that never existed.
    target_roll = rng.random()
    if target_roll < 0.08 and model.deleted:
        pid = rng.choice(sorted(model.deleted))
    elif target_roll < 0.12:
        pid = 10_000_000 + n
    else:
        pid = rng.choice(live)
    current = model.products.get(pid)

    # If-Match: none, the right version, or a stale one.
    match_roll = rng.random()
    if match_roll < 0.4:
        if_match = None
    elif current is None:
        if_match = rng.randint(1, 5)
    elif match_roll < 0.85:
        if_match = current["version"]
    else:
        if_match = max(0, current["version"] - rng.randint(1, 3))

    def expected_for(sku: str | None = None) -> int:
        if current is None:
            return 404
        if if_match is not None and if_match != current["version"]:
            return 412
        if sku is not None and model.sku_taken(sku, by=pid):
            return 409
        return 200

    what_roll = rng.random()
    if what_roll < 0.35:
        sku = rng.choice([model.fresh_sku()] * 4 + [p["sku"] for p in model.products.values()][:1])
        body = product_body(n, sku=sku)
        expected = expected_for(sku)
        response = put(client, pid, body, if_match)
        what = "put"
    elif what_roll < 0.85:
        changes: dict = {}
        for field in rng.sample(["name", "description", "price", "quantity", "sku"], rng.randint(1, 3)):
            if field == "name":
                changes["name"] = f"patched {n}"
            elif field == "description":
                changes["description"] = "x" * rng.randint(0, 30)
            elif field == "price":
                changes["price"] = Decimal(rng.randint(0, 99999)) / 100
            elif field == "quantity":
                changes["quantity"] = rng.randint(0, 1000)
            else:
                changes["sku"] = model.fresh_sku() if rng.random() < 0.8 else rng.choice(
                    [p["sku"] for p in model.products.values()]
                )
        expected = expected_for(changes.get("sku"))
        response = patch(client, pid, changes, if_match)
        what = "patch"
    else:
        expected = expected_for()
        response = delete(client, pid, if_match)
        what = "delete"
        if response.status_code == 200:
            del model.products[pid]
            model.deleted.add(pid)
            return what, expected, response.status_code

    if response.status_code == 200:
        body = response.get_json()
        model.products[pid] = {"version": body["version"], "sku": body["sku"]}
    return what, expected, response.status_code


def test_random_commands_converge_and_the_cli_agrees(settings, command_client, write_engine, read_db, pipeline):
    rng = random.Random(1234567)
    model = Model()
    results = [_random_command(command_client, model, rng, n) for n in range(1, 351)]
    wrong = [(i, r) for i, r in enumerate(results) if r[1] != r[2]]
    assert not wrong, wrong[:10]
    statuses = {status for _what, _expected, status in results}
    assert {200, 201, 404, 409, 412} <= statuses, statuses  # the mix really exercised the errors

    result = wait_equal(write_engine, read_db, timeout=30)
    assert result["products"] == len(model.products)
    assert result["unpublished_events"] == 0

    # Every read document carries the version the write side reports.
    read_versions = {
        doc["_id"]: doc["version"] for doc in read_db[projection.PRODUCTS].find({"deleted": False})
    }
    assert read_versions == {pid: p["version"] for pid, p in model.products.items()}
    tombstones = {doc["_id"] for doc in read_db[projection.PRODUCTS].find({"deleted": True})}
    assert tombstones == model.deleted

    # Each distinct event applied exactly once.
    events = outbox_events(write_engine)
    wait_until(lambda: status(read_db).get("applied", 0) >= len(events), 10, what="status catches up")
    assert status(read_db)["applied"] == len(events)
    assert status(read_db).get("gaps", 0) == 0

    env = child_environment(settings)
    check = subprocess.run(
        [sys.executable, "-m", "cqrs_demo", "check", "--wait", "30"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, (check.stdout, check.stderr)
    report = json.loads(check.stdout)
    assert report["equal"] is True
    assert report["products"] == len(model.products)
    assert report["difference_count"] == 0


# -- 4. what is not an event goes to the dead-letter queue ----------------------------------------


def test_malformed_messages_are_dead_lettered_and_projection_continues(
    command_client, write_engine, read_db, pipeline, publisher
):
    created = post(command_client, product_body(11))
    assert created.status_code == 201
    wait_equal(write_engine, read_db)
    [good] = outbox_events(write_engine)

    not_json = b"this is {not json"
    missing_fields = json.dumps({"type": "product.created", "aggregate_id": 1}).encode()
    not_an_object = b'["product.created", 1]'
    wrong_version = json.dumps({**json.loads(good.to_json()), "schema_version": "one"}).encode()
    unknown_type = json.dumps({**json.loads(good.to_json()), "type": "product.teleported"}).encode()
    # (A schema_version newer than the projector knows is not malformed: its product is held
    # until a projector that knows it arrives; see test_contract_evolution.py.)
    bad = [not_json, missing_fields, not_an_object, wrong_version, unknown_type]
    for body in bad:
        publisher.publish(body, "product.created", message_id="malformed")

    dead = publisher.get_dead_letters(len(bad), timeout=15)
    assert sorted(dead) == sorted(bad)
    assert pipeline["projector"].counts.get("dead_lettered", 0) == len(bad)

    # The projector is still consuming: later commands are projected.
    pid = created.get_json()["id"]
    assert patch(command_client, pid, {"name": "after the poison"}, if_match=1).status_code == 200
    created2 = post(command_client, product_body(12))
    assert created2.status_code == 201
    wait_equal(write_engine, read_db)
    assert read_db[projection.PRODUCTS].find_one({"_id": pid})["name"] == "after the poison"
    assert read_db[projection.PRODUCTS].find_one({"_id": created2.get_json()["id"]})["version"] == 1
    assert publisher.get_dead_letters(1, timeout=0.3) == []


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_event_whose_payload_does_not_fit_is_dead_lettered_and_projection_continues(
    settings, command_client, write_engine, read_db, publisher
):
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.read.projector import Projector

    relay = Background("relay", OutboxRelay(settings)).start()
    projector = Background("projector", Projector(settings)).start()
    try:
        created = post(command_client, product_body(13))
        assert created.status_code == 201
        wait_equal(write_engine, read_db)
        [good] = outbox_events(write_engine)
        # A well-formed envelope whose payload does not fit the contract, for a product of its own.
        bad_payload = json.dumps(
            {**json.loads(good.to_json()), "event_id": "bad-payload", "aggregate_id": 99_999_999, "payload": {}}
        ).encode()
        publisher.publish(bad_payload, "product.created", message_id="bad-payload")

        dead: list[bytes] = []

        def dead_lettered_or_projector_gone():
            dead.extend(publisher.get_dead_letters(1, timeout=0))
            return dead or not projector.thread.is_alive()

        wait_until(dead_lettered_or_projector_gone, 15, what="the event to be dead-lettered")
        assert projector.thread.is_alive(), "the projector died on an event whose payload does not fit"
        assert dead == [bad_payload]
        assert read_db[projection.PRODUCTS].find_one({"_id": 99_999_999}) is None

        # Other products' events flow on.
        created2 = post(command_client, product_body(14))
        assert created2.status_code == 201
        wait_equal(write_engine, read_db)
        assert projector.thread.is_alive()
    finally:
        projector.halt()
        relay.halt()


# -- 5. a row that commits late is published late, never skipped -----------------------------------


def test_relay_publishes_a_row_that_commits_late(settings, command_client, write_engine, read_db, pipeline):
    warmup = post(command_client, product_body(20))
    assert warmup.status_code == 201
    wait_equal(write_engine, read_db)

    held = open_transaction(write_engine, settings)
    tx = held.__enter__()
    committed = False
    try:
        late = products.create(
            tx,
            ProductFields(name="late", description="committed last", price=Decimal("1.50"), quantity=5, sku="LATE-1"),
        )
        # Others commit, with later positions, while the late row is still uncommitted.
        others = []
        for n in range(21, 31):
            response = post(command_client, product_body(n))
            assert response.status_code == 201
            others.append(response.get_json())
        for other in others[:3]:
            assert patch(command_client, other["id"], {"quantity": 1}).status_code == 200
        assert all(other["position"] > late["position"] for other in others)

        # They are published and projected; the late one is invisible so far.
        def others_projected():
            return all(
                (doc := read_db[projection.PRODUCTS].find_one({"_id": o["id"]})) is not None
                and doc["version"] == (2 if o in others[:3] else 1)
                for o in others
            )

        wait_until(others_projected, 15, what="the other commands to be projected")
        wait_until(
            lambda: all(
                row.published_at is not None for row in outbox_rows(write_engine)
            ),
            10,
            what="committed rows to be marked published",
        )
        visible = {row.position for row in outbox_rows(write_engine)}
        assert late["position"] not in visible
        assert max(visible) > late["position"]
        assert read_db[projection.PRODUCTS].find_one({"_id": late["id"]}) is None
        # The relay has already moved past the late row's position: give it a few poll rounds.
        time.sleep(2 * settings.relay_poll_seconds)

        held.__exit__(None, None, None)
        committed = True
    finally:
        if not committed:
            held.__exit__(*sys.exc_info())

    def late_published():
        with write_engine.connect() as conn:
            return conn.scalar(
                sa.select(outbox.c.published_at).where(outbox.c.position == late["position"])
            )

    wait_until(late_published, 10, what="the late row to be published")
    doc = wait_until(
        lambda: read_db[projection.PRODUCTS].find_one({"_id": late["id"]}), 10, what="the late row to be projected"
    )
    assert doc["version"] == 1 and doc["sku"] == "LATE-1" and doc["price_cents"] == 150
    result = wait_equal(write_engine, read_db)
    assert result["unpublished_events"] == 0


def test_relay_publishes_a_late_row_without_notify(settings, command_client, write_engine, read_db):
    """Same, with LISTEN off: the poll alone must find the late row."""
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.read.projector import Projector

    polling = settings.with_(relay_listen=False, relay_poll_seconds=0.2)
    relay = OutboxRelay(polling)
    workers = [Background("relay", relay).start(), Background("projector", Projector(polling)).start()]
    try:
        wait_until(lambda: relay.is_leader, 10, what="the relay to become active")
        warmup = post(command_client, product_body(39))
        assert warmup.status_code == 201
        wait_equal(write_engine, read_db)

        with HeldTransaction(write_engine, settings, "LATE-2") as held:
            late = held.product
            others = [post(command_client, product_body(n)).get_json() for n in range(40, 45)]
            assert all(other["position"] > late["position"] for other in others)
            wait_until(
                lambda: all(read_db[projection.PRODUCTS].find_one({"_id": o["id"]}) for o in others),
                10,
                what="the others to be projected",
            )
            assert read_db[projection.PRODUCTS].find_one({"_id": late["id"]}) is None
            time.sleep(3 * polling.relay_poll_seconds)  # a few polls that pass the late position by
            held.commit()

        doc = wait_until(
            lambda: read_db[projection.PRODUCTS].find_one({"_id": late["id"]}), 10, what="the late row projected"
        )
        assert doc["version"] == 1
        assert wait_equal(write_engine, read_db)["unpublished_events"] == 0
    finally:
        for worker in workers:
            worker.halt()


def test_a_relay_starting_during_a_long_command_does_not_stall_other_commands(
    settings, command_client, write_engine, read_db
):
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.read.projector import Projector

    projector = Background("projector", Projector(settings)).start()
    relay = None
    try:
        with HeldTransaction(write_engine, settings, "LONG-1") as held:
            relay = Background("relay", OutboxRelay(settings)).start()
            # The relay either becomes active or is stuck in start-up behind the open transaction.
            wait_until(
                lambda: relay.worker.is_leader or relay_sessions(write_engine, settings, granted=False) > 0,
                10,
                what="the relay to start",
            )
            answer: dict = {}
            sender = threading.Thread(
                target=lambda: answer.update(response=post(command_client, product_body(50))), daemon=True
            )
            sender.start()
            sender.join(3)
            stalled = sender.is_alive()
            held.commit()
            sender.join(10)
            assert not stalled, "a command stalled while the relay started behind an open command transaction"
            assert answer["response"].status_code == 201
        wait_equal(write_engine, read_db)
    finally:
        if relay is not None:
            relay.halt()
        projector.halt()


# -- a batch's outcomes must be what one-by-one gives, even with a second projector racing ---------


def test_batch_outcomes_survive_a_racing_projector(settings, command_client, write_engine, read_db):
    import pymongo
    from pymongo import monitoring

    from cqrs_demo.read.batch import project_batch

    p = post(command_client, product_body(60)).get_json()["id"]
    q = post(command_client, product_body(61)).get_json()["id"]
    for i in range(6):
        assert patch(command_client, p, {"quantity": i}).status_code == 200
    for i in range(2):
        assert patch(command_client, q, {"quantity": i}).status_code == 200
    event = {(e.aggregate_id, e.aggregate_version): e for e in outbox_events(write_engine)}
    for version in range(1, 5):
        assert project(read_db, event[(p, version)]) is Outcome.APPLIED
    assert project(read_db, event[(q, 1)]) is Outcome.APPLIED

    class SecondProjectorInterleaves(monitoring.CommandListener):
        """Right after projector A's first bulk write lands, projector B applies P's next event."""

        fired = False

        def started(self, event):
            pass

        def failed(self, event):
            pass

        def succeeded(self, e):
            if e.command_name == "update" and not self.fired:
                self.fired = True
                project_batch(read_db, [(event[(p, 7)], {})])

    listener = SecondProjectorInterleaves()
    client_a = pymongo.MongoClient(settings.mongo_url, event_listeners=[listener], tz_aware=True)
    try:
        # A's batch: P's versions 5 and 6 (a clean run that lands), and Q's version 3 (a gap: Q is
        # at 1), which makes the bulk write incomplete so A has to look up which runs landed.
        results = project_batch(
            client_a[settings.mongo_database], [(event[(p, 5)], {}), (event[(p, 6)], {}), (event[(q, 3)], {})]
        )
    finally:
        client_a.close()
    assert listener.fired
    # Versions 5 and 6 were applied by this very batch (no one else had them): one by one they
    # would be APPLIED; a report of DUPLICATE means nobody ever counts them as applied.
    assert results == [Outcome.APPLIED, Outcome.APPLIED, Outcome.GAP], results


# -- the oracle the crash tests use: how many relays are active ------------------------------------


def test_active_relays_counts_only_sessions_holding_the_relay_lock(settings, write_engine):
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.runtime import health
    from cqrs_demo.write.schema import migration_lock_key

    relay = OutboxRelay(settings)  # not run: only its engine, which names sessions as the relay does
    try:
        with relay.engine.begin() as conn:
            # The first thing every relay's start-up does (create_schema): the migration lock.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(migration_lock_key(settings))))
            assert health.active_relays(settings, write_engine) == 0
    finally:
        relay.engine.dispose()
