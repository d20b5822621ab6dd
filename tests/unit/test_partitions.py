"""Partitioned projectors without servers: the route of a product, the spread of partitions over
projectors, and each partition's status record (on the MongoDB double)."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest

from cqrs_demo.config import Settings
from cqrs_demo.messaging import headers, partitions, topology
from cqrs_demo.read import partition_status
from cqrs_demo.read.partition_balance import PartitionBalance, assignment
from cqrs_demo.read.versioned import Outcome
from mongo_double import FakeDatabase
from sample_events import product_created, product_updated


def test_a_products_partition_is_crc32_of_its_stream_key_modulo_n():
    assert partitions.partition_for("product:1", 4) == zlib.crc32(b"product:1") % 4
    # Fixed values a student can recompute by hand: the route must never depend on the process.
    assert [partitions.partition_for(f"product:{i}", 4) for i in range(1, 9)] == [
        zlib.crc32(f"product:{i}".encode()) % 4 for i in range(1, 9)]
    assert partitions.partition_for("product:7", 1) == 0


def test_every_event_of_a_product_goes_to_the_same_partition():
    created, updated = product_created(42), product_updated(42, version=2)
    assert partitions.partition_of(created, 4) == partitions.partition_of(updated, 4)


def test_products_spread_over_all_partitions():
    spread = Counter(partitions.partition_for(f"product:{i}", 4) for i in range(1, 1001))
    assert set(spread) == {0, 1, 2, 3}
    assert min(spread.values()) > 200  # 250 each on average


def test_partitions_must_be_positive():
    with pytest.raises(ValueError):
        partitions.partition_for("product:1", 0)


def test_one_partition_keeps_todays_queue_and_more_get_one_queue_each():
    settings = Settings(namespace="ns")
    assert settings.projector_queues == ["ns.projector"]
    assert settings.with_(partitions=3).projector_queues == ["ns.projector.p0", "ns.projector.p1", "ns.projector.p2"]
    assert settings.with_(partitions=2, delivery="naive").projector_queues == [
        "ns.projector.naive.p0", "ns.projector.naive.p1"]


def test_a_reset_finds_the_queues_of_every_layout():
    queues, exchanges = topology.owned_names(Settings(namespace="ns"))
    assert "ns.projector" in queues and "ns.projector.p15" in queues and "ns.projector.naive.p0" in queues
    assert "ns.partitions" in exchanges


def test_each_partition_goes_to_exactly_one_live_projector():
    members = ["c", "a", "b"]
    owned = [assignment(members, me, 4) for me in members]
    assert set().union(*owned) == {0, 1, 2, 3}
    assert sum(len(o) for o in owned) == 4
    assert assignment(["a"], "a", 4) == {0, 1, 2, 3}


def test_a_projector_gives_up_a_foreign_partition_once_per_member_list():
    db = FakeDatabase()
    a, b = PartitionBalance(db, "a", 2), PartitionBalance(db, "b", 2)
    a.heartbeat(), b.heartbeat(), a.heartbeat()
    assert a.members == ("a", "b")
    assert a.to_give_up(active={0, 1}, crowded={0, 1}) == {1}  # 1 is b's
    assert a.to_give_up(active={0, 1}, crowded={0, 1}) == set()  # not again: the list has not changed
    assert a.to_give_up(active={1}, crowded=set()) == set()
    b.leave()


def test_a_partition_with_nobody_waiting_is_kept():
    db = FakeDatabase()
    a, b = PartitionBalance(db, "a", 2), PartitionBalance(db, "b", 2)
    b.heartbeat(), a.heartbeat()
    assert a.to_give_up(active={1}, crowded=set()) == set()


def _headers(event, partition, sequence):
    return headers.for_event(event, sequence=sequence, published_through=event.position, partition=partition)


def test_a_flush_records_each_partitions_consumer_watermark_and_gaps():
    db = FakeDatabase()
    one, two, other = product_created(1), product_updated(1, version=2), product_created(2)
    flush = partition_status.flush_writes("proj-a", [
        (one, Outcome.APPLIED, _headers(one, 0, 1)),
        (two, Outcome.APPLIED, _headers(two, 0, 2)),
        (other, Outcome.GAP, _headers(other, 3, 3)),
    ], lag_ms=12.5)
    db[partition_status.STATUS].bulk_write(flush, ordered=False)
    db[partition_status.STATUS].bulk_write(partition_status.depth_writes([(0, 2), (4, 1), None, (7, 2)]), ordered=False)
    rows = partition_status.partitions_view(db, 4, live_consumers={"proj-a"})
    assert rows[0] == {"partition": 0, "consumer": "proj-a", "consumer_alive": True, "depth": 0, "consumers": 2,
                       "watermark": two.position, "lag_ms": 12.5, "applied": 2, "gaps": 0}
    assert rows[3]["gaps"] == 1 and rows[3]["watermark"] == 0 and rows[3]["depth"] == 7
    assert rows[2] == {"partition": 2, "consumer": None, "consumer_alive": False, "depth": None, "consumers": None,
                       "watermark": 0, "lag_ms": None, "applied": 0, "gaps": 0}
    assert partition_status.partitions_view(db, 4, live_consumers=set())[0]["consumer_alive"] is False


def test_projectors_that_start_together_each_take_their_own_share_first():
    db = FakeDatabase()
    a, b = PartitionBalance(db, "a", 4), PartitionBalance(db, "b", 4)
    a.heartbeat(), b.heartbeat(), a.heartbeat()
    assert a.own() == {0, 2} and b.own() == {1, 3}
