"""Retention: published outbox rows move to the event log, exactly once, and nothing is lost.

Time is simulated where it must be: a row's `published_at` is set back to make it old, since a
test cannot wait a week. Everything else is the real thing: PostgreSQL, the relay, the CLI as a
process, a crash as a SIGKILL in the middle of a transaction.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from cqrs_demo import failpoints
from cqrs_demo.consistency import compare
from cqrs_demo.polling import wait_until
from cqrs_demo.read import audit
from cqrs_demo.runtime.processes import child_environment
from cqrs_demo.write import retention
from cqrs_demo.write.event_log import count_events, event_log
from cqrs_demo.write.schema import event_log_table, outbox
from support import SEED_PRODUCT, Background

pytestmark = pytest.mark.timeout(120)


def create_products(client, count: int, start: int = 0) -> list[dict]:
    created = []
    for n in range(start, start + count):
        response = client.post("/api/products", json={**SEED_PRODUCT, "sku": f"SKU-RET-{n}", "quantity": 100})
        assert response.status_code == 201, response.get_json()
        created.append(response.get_json())
    return created


def publish(engine, positions, ago: timedelta) -> None:
    """Mark rows published `ago` before now, as a relay that ran back then would have."""
    with engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.position.in_(list(positions)))
                     .values(published_at=sa.func.now() - sa.literal(ago, sa.Interval())))


def positions(engine, table) -> list[int]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.select(table.c.position).order_by(table.c.position)))


def event_ids(engine) -> list[str]:
    return [event.event_id for event in event_log(engine)]


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cqrs_demo", *args], env=child_environment(settings),
                          capture_output=True, text=True, timeout=60)


def test_prune_moves_only_published_rows_older_than_the_age(settings, command_client, write_engine):
    rows = [p["position"] for p in create_products(command_client, 8)]
    old, recent, unpublished = rows[:4], rows[4:6], rows[6:]
    publish(write_engine, old, timedelta(hours=2))
    publish(write_engine, recent, timedelta(minutes=5))
    with write_engine.begin() as conn:  # committed long ago, never published: must stay for the relay
        conn.execute(outbox.update().where(outbox.c.position.in_(unpublished))
                     .values(committed_at=sa.func.now() - sa.text("interval '30 days'")))
    before = event_ids(write_engine)

    report = retention.prune(write_engine, timedelta(hours=1), chunk=3)  # two chunks: 3 + 1

    assert (report.moved, report.first_position, report.last_position) == (4, old[0], old[-1])
    assert positions(write_engine, event_log_table) == old
    assert positions(write_engine, outbox) == recent + unpublished
    assert event_ids(write_engine) == before  # one log, same events, same order
    assert count_events(write_engine) == len(rows)


def test_a_dry_run_counts_what_would_move_and_moves_nothing(settings, command_client, write_engine):
    rows = [p["position"] for p in create_products(command_client, 5)]
    publish(write_engine, rows[:3], timedelta(days=8))

    done = cli(settings, "outbox", "prune", "--dry-run")  # the default age: 7 days
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True and report["moved"] == 3
    assert (report["first_position"], report["last_position"]) == (rows[0], rows[2])
    assert report["older_than_seconds"] == 7 * 24 * 3600
    assert positions(write_engine, outbox) == rows and positions(write_engine, event_log_table) == []

    done = cli(settings, "outbox", "prune", "--older-than", "9d")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["moved"] == 0  # published 8 days ago is not older than 9 days
    assert positions(write_engine, event_log_table) == []

    done = cli(settings, "outbox", "prune", "--older-than", "a week")
    assert done.returncode == 2 and "not a duration: 'a week'" in done.stderr


def test_a_prune_killed_mid_transaction_loses_nothing_and_a_second_run_finishes(settings, command_client,
                                                                               write_engine):
    rows = [p["position"] for p in create_products(command_client, 6)]
    publish(write_engine, rows, timedelta(days=30))
    before = event_ids(write_engine)

    failpoints.arm(settings, failpoints.PRUNE_BEFORE_COMMIT)
    crashed = cli(settings, "outbox", "prune")
    # Killed after deleting from the outbox and inserting into the event log, before COMMIT.
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    wait_until(lambda: idle_prunes(write_engine, settings) == 0, 10, what="PostgreSQL to end the killed session")
    assert positions(write_engine, outbox) == rows and positions(write_engine, event_log_table) == []
    assert event_ids(write_engine) == before

    finished = cli(settings, "outbox", "prune")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["moved"] == len(rows)
    assert positions(write_engine, event_log_table) == rows and positions(write_engine, outbox) == []
    assert event_ids(write_engine) == before


def idle_prunes(engine, settings) -> int:
    """Sessions still inside a transaction that touched this namespace's event log."""
    with engine.connect() as conn:
        return conn.scalar(sa.text(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = 'event_log' AND l.pid <> pg_backend_pid()"),
            {"schema": settings.schema})


def test_concurrent_prunes_move_each_row_exactly_once(settings, command_client, write_engine):
    rows = [p["position"] for p in create_products(command_client, 40)]
    publish(write_engine, rows, timedelta(days=30))
    reports, errors = [], []

    def prune():
        try:
            reports.append(retention.prune(write_engine, timedelta(days=1), chunk=3))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=prune) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sum(report.moved for report in reports) == len(rows)
    assert positions(write_engine, event_log_table) == rows and positions(write_engine, outbox) == []


def test_event_ids_and_versions_stay_unique_across_both_tables(settings, command_client, write_engine):
    [created] = create_products(command_client, 1)
    publish(write_engine, [created["position"]], timedelta(days=30))
    assert retention.prune(write_engine, timedelta(days=1)).moved == 1
    [archived] = list(event_log(write_engine))

    with pytest.raises(sa.exc.IntegrityError, match="already in the event log"):
        with write_engine.begin() as conn:  # the archived product's version 1, again
            conn.execute(outbox.insert().values(
                event_id="00000000-0000-4000-8000-000000000001", type=archived.type, aggregate_type="product",
                aggregate_id=archived.aggregate_id, aggregate_version=1, payload={},
                received_at=sa.func.now(), committed_at=sa.func.now()))
    with pytest.raises(sa.exc.IntegrityError, match="already in the event log"):
        with write_engine.begin() as conn:  # its event id, again
            conn.execute(outbox.insert().values(
                event_id=archived.event_id, type=archived.type, aggregate_type="product",
                aggregate_id=archived.aggregate_id, aggregate_version=2, payload={},
                received_at=sa.func.now(), committed_at=sa.func.now()))
    for change in (event_log_table.update().values(payload={}), event_log_table.delete()):
        with pytest.raises(sa.exc.DBAPIError, match="event_log is append-only"):
            with write_engine.begin() as conn:
                conn.execute(change)
    # The write side carries on: the product's next version is a new event.
    response = command_client.patch(f"/api/products/{created['id']}", json={"quantity": 1})
    assert response.status_code == 200 and response.get_json()["version"] == 2


def test_the_active_relay_prunes_by_itself_and_a_rebuild_still_sees_every_event(
    settings, command_client, write_engine, read_db
):
    from cqrs_demo.read.projector import Projector
    from cqrs_demo.read.rebuild import rebuild

    quick = settings.with_(outbox_retention_hours=1 / 3600)  # published over a second ago: old
    workers = [Background("relay", _relay(quick)).start(), Background("projector", Projector(settings)).start()]
    try:
        created = create_products(command_client, 5)
        order = command_client.post("/api/orders", json={"customer": "ada", "lines": [
            {"product_id": created[0]["id"], "quantity": 2}, {"product_id": created[1]["id"], "quantity": 1}]})
        assert order.status_code == 201
        assert command_client.post(f"/api/orders/{order.get_json()['id']}/cancel").status_code == 200
        total = count_events(write_engine)
        wait_until(lambda: positions(write_engine, outbox) == [], 15, what="the relay to move every row")
        assert len(positions(write_engine, event_log_table)) == total
        wait_until(lambda: compare(write_engine, read_db)["equal"], 15, what="the read model to catch up")
    finally:
        for worker in workers:
            worker.halt()

    counts = rebuild(write_engine, read_db)
    assert sum(counts.values()) == total and counts == {"applied": total}
    result = compare(write_engine, read_db)
    assert result["equal"], result


def test_a_relay_told_not_to_prune_leaves_the_outbox_alone(settings, command_client, write_engine):
    keep = settings.with_(outbox_retention_hours=1 / 3600, relay_prunes_outbox=False)
    relay = Background("relay", _relay(keep)).start()
    try:
        rows = [p["position"] for p in create_products(command_client, 3)]
        wait_until(lambda: unpublished(write_engine) == 0, 10, what="the relay to publish")
        wait_until(lambda: relay.worker.is_leader, 5)
        threading.Event().wait(2 * keep.relay_poll_seconds + 1)  # well past the retention, a few polls
        assert positions(write_engine, outbox) == rows
    finally:
        relay.halt()


def unpublished(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).where(outbox.c.published_at.is_(None)))


def _relay(settings):
    from cqrs_demo.messaging.relay import OutboxRelay

    return OutboxRelay(settings)


def test_the_audit_is_bounded_by_a_ttl_index_of_the_configured_term(settings, read_db):
    audit.ensure_retention(read_db, 2.5)
    audit.ensure_retention(read_db, 2.5)  # every projector start does it again
    ttl = [index for index in read_db[audit.APPLICATIONS].list_indexes() if "expireAfterSeconds" in index]
    assert [(dict(index["key"]), index["expireAfterSeconds"]) for index in ttl] == [({"at": 1}, 9000)]
