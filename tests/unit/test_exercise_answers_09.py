"""How the checks of notebook 09 read an answer, without a stack: no I/O.

09.1's check drives a stack; its per-event judgement, its hints and its replay are tested here on
events built in memory, the whole check on a real stack in tests/e2e/test_exercise_checks_09.py.
"""

from __future__ import annotations

import pytest
from sample_events import event, product_created, product_fields, product_updated

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises import nb09
from cqrs_demo.course.verdict import Row
from cqrs_demo.messaging import events
from cqrs_demo.read.upcasting import UPCASTERS, Upcasters


def right(payload):
    return {**payload, "price": {"amount": payload["price"], "currency": "EUR"}}


def as_float(payload):
    return {**payload, "price": {"amount": float(payload["price"]), "currency": "EUR"}}


def no_currency(payload):
    return {**payload, "price": {"amount": payload["price"]}}


def other_currency(payload):
    return {**payload, "price": {"amount": payload["price"], "currency": "USD"}}


def bare(payload):
    return payload


def forgets_return(payload):
    payload["price"] = {"amount": payload["price"], "currency": "EUR"}


def raises(payload):
    return {**payload, "price": {"amount": payload["cost"], "currency": "EUR"}}


def test_the_expected_version_2_is_what_the_shipped_upcaster_gives():
    created = product_created(1, price="12.50")
    assert nb09.expected_v2(created.payload) == UPCASTERS.upcast(created).payload


def test_a_right_upcaster_passes_an_event():
    rows: list[Row] = []
    assert nb09._judged(right, product_updated(1, 2, price="9.99"), rows) is None
    assert rows[0].ok and "product.updated v1 of product 1" in rows[0].item


@pytest.mark.parametrize("answer, says", [
    (nb09._price_only, "lost description, name, quantity, sku"),
    (bare, "not as a bare amount"),
    (no_currency, "not as a bare amount"),
    (other_currency, "'EUR'"),
    (as_float, "decimal string"),
    (forgets_return, "Return the new payload"),
    (raises, "Return the new payload"),
])
def test_each_mistake_fails_at_the_first_event_with_its_own_hint(answer, says):
    rows: list[Row] = []
    verdict = nb09._judged(answer, product_created(7, price="3.10"), rows)
    assert verdict is not None and not verdict.passed
    assert says in verdict.hint and "position" in verdict.answer
    assert rows[-1].ok is False


def test_an_upcaster_that_raises_is_shown_as_the_line_that_raised():
    verdict = nb09._judged(raises, product_created(7), [])
    assert "raised KeyError" in verdict.answer


def test_the_replay_folds_each_product_to_its_last_version_and_leaves_out_deleted_ones():
    registry = Upcasters({(t, 1): right for t in nb09.UPCAST_TYPES})
    log = [
        product_created(1, price="10.00"),
        product_created(2),
        product_updated(1, 2, price="12.00"),
        event(events.PRODUCT_UPDATED, 1, 3, product_fields(price=events.price_v2("13.00")), schema_version=2),
        event(events.PRODUCT_STOCK_CHANGED, 1, 4, {"quantity": 2, "units_sold_delta": 1, "revenue_delta": "13.00"}),
        event(events.PRODUCT_DELETED, 2, 2, {}),
    ]
    replayed = nb09.replay_products(log, registry)
    assert list(replayed) == [1]
    assert replayed[1]["version"] == 4 and replayed[1]["quantity"] == 2
    assert replayed[1]["price_cents"] == 1300


def test_the_replay_names_the_event_an_upcaster_breaks():
    registry = Upcasters({(t, 1): no_currency for t in nb09.UPCAST_TYPES})
    with pytest.raises(nb09.ReplayFailed) as failed:
        nb09.replay_products([product_created(3)], registry)
    assert failed.value.event.aggregate_id == 3


@pytest.mark.parametrize("prediction, passed", [(1, True), (1.0, True), ("1", False), (5, False), (0, False)])
def test_09_2_counts_orders_exactly(prediction, passed):
    assert exercise("09.2").judge(prediction, observed=1).passed is passed
    assert not exercise("09.2").judge(exercise("09.2").wrong_answer, observed=1).passed


@pytest.mark.parametrize("paused, place", [
    ({"watermark": 40, "newest_position": 43}, "where it was before the pause"),
    ({"watermark": 43, "newest_position": 43}, "at the newest order's position"),
    ({"watermark": 0, "newest_position": 43}, "at 0"),
    ({"watermark": 41, "newest_position": 43}, "at 41, between the two"),
])
def test_09_3_names_where_the_watermark_was_read(paused, place):
    assert nb09.watermark_place(40, paused) == place


def test_09_3_takes_one_of_its_places():
    observed = nb09.watermark_place(40, {"watermark": 40, "newest_position": 43})
    assert exercise("09.3").judge("where it was before the pause", observed=observed).passed
    assert not exercise("09.3").judge(exercise("09.3").wrong_answer, observed=observed).passed
    assert not exercise("09.3").judge("somewhere", observed=observed).passed
