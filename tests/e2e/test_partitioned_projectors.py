"""Partitioned projectors as real processes: 4 partitions, 3 projectors, commands flowing while
projectors are SIGKILLed and restarted. Every product's events are applied once each, in order,
nothing is lost, and the gap retries that two projectors on one queue make all the time stay
near zero. Plus: a process started with another number of partitions refuses while the queues
hold events, and switches once they are drained."""

from __future__ import annotations

import signal
from collections import defaultdict

import pytest
import requests
from support import extra_process
from test_crash_recovery import CommandSender, assert_converged, outbox_counts

from cqrs_demo.connections import amqp_connection
from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.messaging import partition_layout, topology
from cqrs_demo.messaging.partition_layout import PartitionLayoutChanged
from cqrs_demo.polling import wait_until
from cqrs_demo.read import partition_status, projection
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.runtime import health

pytestmark = pytest.mark.timeout(150)

PARTITIONS = 4


@pytest.fixture
def partitioned(settings):
    from cqrs_demo.runtime.ports import free_port
    from cqrs_demo.runtime.stack import Stack

    stack = Stack(settings.with_(command_port=free_port(), query_port=free_port(), partitions=PARTITIONS,
                                 projection_audit=True)).start()
    yield stack
    stack.stop()


def applied_versions(db) -> dict[str, list[int]]:
    """Each stream's applied versions, in the order they were applied (the audit log's order)."""
    versions: dict[str, list[int]] = defaultdict(list)
    for doc in db[APPLICATIONS].find({"outcome": "applied"}).sort([("at", 1), ("position", 1)]):
        versions[f"{doc['aggregate_type']}:{doc['aggregate_id']}"].append(doc["version"])
    return versions


def test_four_partitions_three_projectors_killed_and_restarted(partitioned, write_engine, read_db):
    stack = partitioned
    extras = [extra_process(stack.settings, stack.directory, "projector") for _ in range(2)]
    try:
        wait_until(lambda: (health.projector_queue_counts(stack.settings) or (0, 0))[1] >= 3, 30,
                   what="three projectors subscribed to every partition")
        sender = CommandSender(stack.urls()["command"], total=800, threads=4, products_per_thread=6, seed=15,
                               pace=0.002).start()
        sender.wait_sent(150, timeout=60)
        stack.stop_service("projector", signal.SIGKILL)  # its partitions go to the standbys at once
        sender.wait_sent(350, timeout=60)
        stack.start_service("projector")
        extras[0].signal(signal.SIGKILL)
        extras[0].wait(10)
        sender.wait_sent(550, timeout=60)
        extras[0] = extra_process(stack.settings, stack.directory, "projector")
        sender.join(timeout=120)

        assert_converged(write_engine, read_db, timeout=60)
        counts = outbox_counts(write_engine)
        assert counts["rows"] == counts["distinct"] >= 800 and counts["unpublished"] == 0
        # Exactly once: the read model equals the write model (a doubled stock change would show in
        # the sales), and no event was applied twice. In order: each stream's versions were applied
        # in increasing order. The audit is written after the documents, so a projector killed in
        # between leaves a few applications unrecorded (their redelivery is a duplicate): never more.
        versions = applied_versions(read_db)
        recorded = sum(len(v) for v in versions.values())
        assert counts["distinct"] - 2 * stack.settings.projector_prefetch <= recorded <= counts["distinct"]
        out_of_order = {key: v for key, v in versions.items() if v != sorted(set(v))}
        assert not out_of_order, list(out_of_order.items())[:3]
        # Gap retries: only when a restarted projector takes its share back while events flow, and
        # then in a burst now and then, not at every handover. On a 2-core machine (of ~990
        # events): 0, 0 and 4 in three runs with gaps kept in hand; 0 to 6 in most runs and 33 to
        # 62 in about one in three when each gap went straight back to the queue. A handover that
        # put events back out of order would make them for every event in flight at each of this
        # test's handovers; two projectors on one queue make thousands in a catch-up
        # (benchmarks/results/partitioned_catchup.json).
        gaps = (read_db[projection.STATUS].find_one({"_id": "projector"}) or {}).get("gaps", 0)
        assert gaps <= counts["distinct"] // 8, gaps
        # Every partition was worked, and the status names a live consumer for each.
        rows = partition_status.partitions_view(read_db, PARTITIONS, set())
        assert all(row["applied"] > 0 and row["consumer"] for row in rows), rows
        served = requests.get(f"{stack.urls()['query']}/api/projection", timeout=10).json()["partitions"]
        assert [row["partition"] for row in served] == list(range(PARTITIONS)), served
        assert all(row["consumer"] and row["consumers"] for row in served), served
        assert all(process.alive() for process in extras) and stack.processes["projector"].alive()
    finally:
        for process in extras:
            process.stop()


def test_another_partition_count_is_refused_until_the_queues_are_drained(partitioned, write_engine, read_db):
    stack = partitioned
    four = stack.settings
    assert partition_layout.recorded(read_db) == PARTITIONS
    stack.stop_service("projector")  # events now wait in the partition queues
    CommandSender(stack.urls()["command"], total=20, threads=1, products_per_thread=5, seed=16,
                  orders=False).start().join()
    wait_until(lambda: (health.projector_queue_counts(four) or (0, 0))[0] >= 20, 20, what="20 queued events")

    two = four.with_(partitions=2)
    connection = amqp_connection(two)
    try:
        with pytest.raises(PartitionLayoutChanged, match="CQRS_PARTITIONS=4.*drain"):
            partition_layout.declare(topology.ReopeningChannel(connection), two, read_db)
        refused = extra_process(two, stack.directory, "projector")
        assert refused.wait(30) and refused.popen.returncode == 2, refused.log()
        assert "let the projectors drain the queues" in refused.log()

        stack.stop_service("relay")  # the drain: nothing new comes in, the projector empties the queues
        stack.start_service("projector")
        assert_converged(write_engine, read_db)
        wait_until(lambda: (health.projector_queue_counts(four) or (1, 0))[0] == 0, 20, what="drained queues")
        stack.stop_service("projector")

        partition_layout.declare(topology.ReopeningChannel(connection), two, read_db)
        assert partition_layout.recorded(read_db) == 2
        assert health.projector_queue_counts(four) is None  # the four queues are gone
        assert health.projector_queue_counts(two) == (0, 0)
    finally:
        connection.close()


def test_naive_mode_routes_to_partitions_too(settings, write_engine, read_db):
    """The seed's publish-after-commit design, split in two partitions: the command service stamps
    the partition, and the projector consumes both (auto-delete) queues."""
    from cqrs_demo.runtime.ports import free_port
    from cqrs_demo.runtime.stack import Stack

    stack = Stack(settings.with_(command_port=free_port(), query_port=free_port(), partitions=2,
                                 delivery="naive")).start()
    try:
        wait_until(lambda: (health.projector_queue_counts(stack.settings) or (0, 0))[1] >= 1, 20,
                   what="the projector on both partitions")
        CommandSender(stack.urls()["command"], total=60, threads=2, products_per_thread=6, seed=17,
                      orders=False).start().join()
        result = wait_until_equal(write_engine, read_db, timeout=30)  # naive mode marks no row published
        assert result["equal"], result
        rows = partition_status.partitions_view(read_db, 2, set())
        assert all(row["applied"] > 0 for row in rows), rows
    finally:
        stack.stop()
