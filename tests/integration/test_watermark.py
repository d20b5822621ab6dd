"""The watermark never passes an event that is not applied, and reaches the end once all are.

`/api/projection`'s `watermark` promises: every outbox event at or below this position is in the
read model. Each test samples it continuously while it creates the situations where a naive
"highest position applied" lies: an event held behind a poison message, a transaction that took a
position and commits late, one that rolled back and left a hole, a relay paused and restarted,
two projectors applying out of order. Every sample is checked against PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa
from support import Background

from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.messaging import publication
from cqrs_demo.read import projection, queries
from cqrs_demo.write import products
from cqrs_demo.write.commands import ProductFields
from cqrs_demo.write.schema import outbox
from cqrs_demo.write.transaction import command_transaction

from test_poison_handling import create, fix, outbox_event, poison, read_version, update
from test_projection_guarantees import HeldTransaction

pytestmark = pytest.mark.timeout(120)


def unapplied_at_or_below(engine, db, position: int) -> list[tuple[int, str, int, int]]:
    """Outbox events at or below `position` that the read model does not have yet."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(outbox.c.position, outbox.c.aggregate_type, outbox.c.aggregate_id, outbox.c.aggregate_version)
            .where(outbox.c.position <= position)
        ).all()
    versions: dict[tuple[str, int], int] = {}
    for kind in ("product", "order"):
        for doc in db[projection.read_collection(kind)].find({}, {"version": 1}):
            versions[(kind, doc["_id"])] = doc["version"]
    return [tuple(row) for row in rows if versions.get((row.aggregate_type, row.aggregate_id), 0) < row.aggregate_version]


class WatermarkWatch:
    """Samples the status in a thread; every sample's watermark is checked against PostgreSQL."""

    def __init__(self, engine, db) -> None:
        self.engine, self.db = engine, db
        self.samples: list[int] = []
        self.violations: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mark = queries.projection_status(self.db)["watermark"]
            # Checked after sampling: the read model only moves forward, so a violation seen
            # here was one at the moment of sampling.
            missing = unapplied_at_or_below(self.engine, self.db, mark)
            if missing:
                self.violations.append((mark, missing[:5]))
            self.samples.append(mark)
            self._stop.wait(0.05)

    def __enter__(self) -> "WatermarkWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self.violations, f"the watermark passed unapplied events: {self.violations[:3]}"
        assert self.samples == sorted(self.samples), "the watermark went backwards"


def start(settings, projectors: int = 2) -> dict[str, Background]:
    from cqrs_demo.messaging.relay import OutboxRelay
    from cqrs_demo.read.projector import Projector

    workers = {f"projector-{n}": Background(f"projector-{n}", Projector(settings)).start() for n in range(projectors)}
    workers["relay"] = Background("relay", OutboxRelay(settings)).start()
    return workers


def halt(workers: dict[str, Background]) -> None:
    for worker in workers.values():
        worker.halt()


def status(db) -> dict:
    return queries.projection_status(db)


def max_position(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.max(outbox.c.position)))


def wait_watermark(db, position: int, timeout: float = 20) -> None:
    try:
        wait_until(lambda: status(db)["watermark"] >= position, timeout, what=f"the watermark at {position}")
    except WaitTimeout:
        pass
    assert status(db)["watermark"] == position, status(db)


def test_the_watermark_stops_below_an_event_held_behind_a_poison_message(
    settings, command_client, write_engine, read_db, broker
):
    held_product, other = create(command_client, 1), create(command_client, 2)
    update(command_client, held_product, 1)
    original = poison(write_engine, held_product, 2)
    poisoned_at = outbox_event(write_engine, held_product, 2).position
    for quantity in range(5):
        update(command_client, other, quantity)
    workers = start(settings)
    try:
        with WatermarkWatch(write_engine, read_db):
            [(properties, _)] = broker.dead_letters(1)
            wait_until(lambda: read_version(read_db, other) == 6, 20, what="the other product caught up")
            wait_watermark(read_db, poisoned_at - 1)
            fix(write_engine, held_product, 2, original)
            broker.replay(properties, outbox_event(write_engine, held_product, 2))
            wait_watermark(read_db, max_position(write_engine))
    finally:
        halt(workers)


def _rolled_back_create(engine, sku: str) -> None:
    """A command that takes an outbox position and rolls back: a hole for ever."""
    with pytest.raises(RuntimeError):
        with command_transaction(engine) as tx:
            products.create(tx, ProductFields(name="gone", price=Decimal("1"), quantity=1, sku=sku))
            raise RuntimeError("roll back")


def test_the_watermark_waits_for_a_late_commit_skips_holes_and_survives_a_paused_relay(
    settings, command_client, write_engine, read_db
):
    workers = start(settings)
    try:
        with WatermarkWatch(write_engine, read_db):
            first = create(command_client, 1)
            first_position = max_position(write_engine)
            wait_watermark(read_db, first_position)
            _rolled_back_create(write_engine, "HOLE-1")
            with HeldTransaction(write_engine, settings, "LATE-1") as late:
                _rolled_back_create(write_engine, "HOLE-2")
                for quantity in range(3):
                    update(command_client, first, quantity)
                wait_until(lambda: read_version(read_db, first) == 4, 20, what="the later commands applied")
                # Applied past it, yet the watermark waits below the open transaction's position
                # (how far below depends on when the relay last saw no transaction in flight).
                assert first_position <= status(read_db)["watermark"] < late.product["position"]

                workers.pop("relay").halt()
                for quantity in range(3, 6):
                    update(command_client, first, quantity)
                late.commit()
            _rolled_back_create(write_engine, "HOLE-3")
            from cqrs_demo.messaging.relay import OutboxRelay

            workers["relay"] = Background("relay", OutboxRelay(settings)).start()
            update(command_client, first, 99)
            wait_watermark(read_db, max_position(write_engine))
    finally:
        halt(workers)


def test_a_batch_numbered_while_its_writer_committed_carries_the_mark_past_it(settings, write_engine):
    # The race, made to happen: the relay looks while a command is still committing, the command
    # commits, and the next numbering finds its row. Numbered with the horizon of the look, the
    # newest event's mark would stay below it until another event came, and the watermark with it.
    horizon = publication.Horizon(settings)
    with write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        with HeldTransaction(write_engine, settings, "TAIL-1") as writer:
            settled = horizon.look(conn).settled
            writer.commit()
        (row,) = publication.number_batch(conn, settings, settled, limit=100)
        assert row.published_through < row.position  # what the look alone allows

        row = publication.settle_tail(conn, settings, horizon, row)

    assert row.published_through == row.position == writer.product["position"]


def test_two_projectors_under_load_never_show_a_watermark_past_an_unapplied_event(
    settings, command_client, write_engine, read_db
):
    workers = start(settings, projectors=2)
    try:
        with WatermarkWatch(write_engine, read_db) as watch:
            ids = [create(command_client, n) for n in range(3)]
            # At least 120 updates, and on until the watermark was seen moving under the load:
            # a fast machine sends 120 within one or two of its advances.
            deadline = time.monotonic() + 30
            i = 0
            while i < 120 or (len(set(watch.samples)) <= 2 and time.monotonic() < deadline):
                update(command_client, ids[i % 3], i)
                i += 1
            wait_watermark(read_db, max_position(write_engine), timeout=30)
        assert len(set(watch.samples)) > 2, watch.samples  # it moved while the load ran
        assert status(read_db)["gaps"] >= 0
    finally:
        halt(workers)


def test_the_status_reports_the_age_of_the_oldest_unpublished_event(settings, command_client, write_engine, read_db):
    from cqrs_demo.messaging.relay import OutboxRelay

    create(command_client, 1)  # no relay runs: it waits in the outbox
    relay = OutboxRelay(settings)
    stop = threading.Event()
    try:
        with relay.engine.connect() as conn:  # what a relay's cycle sees, before it publishes
            state = relay.horizon.look(conn)
        assert state.oldest_unpublished is not None
        relay.status.saw(state.oldest_unpublished, state.settled)
        relay.status.start(stop)
        wait_until(lambda: status(read_db)["relay_checked_at"], 10, what="the relay's report")
    finally:
        stop.set()
        relay.status.join()
        relay.engine.dispose()
    # The relay reported once and went quiet; the age keeps growing, as a stuck relay's would.
    first = status(read_db)["oldest_unpublished_age_s"]
    wait_until(lambda: status(read_db)["oldest_unpublished_age_s"] > first + 0.3, 5, what="the age to grow")

    workers = start(settings, projectors=1)
    try:
        wait_until(lambda: status(read_db)["oldest_unpublished_age_s"] == 0.0, 20, what="nothing unpublished")
    finally:
        halt(workers)


def test_the_queue_depth_is_what_waits_in_the_projector_queue(settings, command_client, read_db, broker):
    from cqrs_demo.connections import amqp_connection
    from cqrs_demo.messaging import topology
    from cqrs_demo.read.projector import Projector

    for n in range(4):
        broker.publish(b"{}", {}, f"m{n}")
    projector = Projector(settings)
    connection = amqp_connection(settings)
    try:
        # the periodic measurement, without consuming
        projector._tick(connection, topology.ReopeningChannel(connection))
    finally:
        connection.close()
        projector.client.close()
    assert status(read_db)["queue_depth"] == 4
