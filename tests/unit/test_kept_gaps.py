"""Which gaps in hand are tried again, which wait untried, and when they go back to the queue."""

from __future__ import annotations

from types import SimpleNamespace

from cqrs_demo.read.delivery import Delivery
from cqrs_demo.read.kept_gaps import KeptGaps

from sample_events import product_created, product_updated


def delivered(event, channel=None) -> Delivery:
    return Delivery(SimpleNamespace(redelivered=False, delivery_tag=event.position), {}, b"", event.event_id,
                    event=event, channel=channel or SimpleNamespace(is_open=True))


def versions(deliveries: list[Delivery]) -> list[tuple[int, int]]:
    return [(d.event.aggregate_id, d.event.aggregate_version) for d in deliveries]


def test_only_each_streams_consecutive_run_from_its_lowest_version_is_tried():
    kept = KeptGaps()
    kept.keep([delivered(product_updated(1, 5))])
    arrived = [delivered(product_updated(1, 7)), delivered(product_updated(1, 4)),
               delivered(product_created(2)), delivered(product_updated(2, 2)), delivered(product_updated(1, 9))]

    now, later = kept.take(arrived)

    assert versions(now) == [(1, 4), (1, 5), (2, 1), (2, 2)]  # in version order per stream
    assert versions(later) == [(1, 7), (1, 9)]  # above 5's hole: they cannot apply before 6
    assert len(kept) == 0  # all handed out


def test_a_version_twice_stays_in_the_run():
    now, later = KeptGaps().take([delivered(product_updated(1, 3)), delivered(product_updated(1, 3)),
                                  delivered(product_updated(1, 4))])
    assert versions(now) == [(1, 3), (1, 3), (1, 4)] and later == []


def test_deliveries_of_a_closed_channel_are_dropped():
    closed = SimpleNamespace(is_open=False)
    kept = KeptGaps()
    kept.keep([delivered(product_updated(1, 5), channel=closed), delivered(product_updated(2, 5))])
    now, later = kept.take([])
    assert versions(now) == [(2, 5)] and later == []


def test_a_delivery_kept_again_keeps_the_time_it_was_first_kept():
    kept = KeptGaps()
    old, new = delivered(product_updated(1, 5)), delivered(product_updated(1, 6))
    kept.keep([old])
    first = old.kept_since
    kept.take([])
    kept.keep([old, new])
    assert old.kept_since == first and new.kept_since >= first and len(kept) == 2


def test_only_deliveries_kept_longer_than_the_limit_expire():
    kept = KeptGaps(keep_seconds=10)
    old, new = delivered(product_updated(1, 5)), delivered(product_updated(1, 6))
    kept.keep([old, new])
    old.kept_since -= 11

    assert kept.expired() == [old]
    assert len(kept) == 1 and kept.expired() == []
