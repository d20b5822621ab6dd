"""Exercise checks that run the student's code on the real MongoDB-wire server.

Notebook 03's rule for `product.renamed` (exercise 03.2): the right rule passes; each classic
mistake fails at the delivery that exposes it, with a message that says what happened.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises.nb03 import SCRATCH, _check_then_act

PRODUCT = {
    "_id": 7, "id": 7, "name": "Teapot", "description": "Cast iron", "price_cents": 2400, "quantity": 4,
    "sku": "TEAPOT", "deleted": False, "version": 2, "position": 5,
    "committed_at": datetime(2030, 1, 1, tzinfo=timezone.utc),
}


@pytest.fixture
def live(read_db):
    read_db["products"].insert_one(dict(PRODUCT))
    return read_db


def judge(read_db, rule):
    return exercise("03.2").judge(rule, read_db=read_db, product_id=PRODUCT["_id"])


def conditional(products, event):
    """The right rule: the version check is the write's filter."""
    version = event.aggregate_version
    result = products.update_one({"_id": event.aggregate_id, "version": version - 1},
                                 {"$set": {"name": event.payload["name"], "version": version}})
    if result.matched_count:
        return "applied"
    current = products.find_one({"_id": event.aggregate_id})
    return "duplicate" if current["version"] >= version else "gap"


def unchecked(products, event):
    products.update_one({"_id": event.aggregate_id},
                        {"$set": {"name": event.payload["name"], "version": event.aggregate_version}})
    return "applied"


def replacing(products, event):
    version = event.aggregate_version
    result = products.replace_one({"_id": event.aggregate_id, "version": version - 1},
                                  {"name": event.payload["name"], "version": version})
    return "applied" if result.matched_count else "duplicate"


def never_gap(products, event):
    version = event.aggregate_version
    result = products.update_one({"_id": event.aggregate_id, "version": version - 1},
                                 {"$set": {"name": event.payload["name"], "version": version}})
    return "applied" if result.matched_count else "duplicate"


def stub(products, event):
    """Not written yet."""
    ...


def no_return(products, event):
    products.find_one({"_id": event.aggregate_id})


def crashing(products, event):
    return event.payload["title"]


def test_the_conditional_write_passes_and_leaves_the_live_document_alone(live):
    verdict = judge(live, conditional)
    assert verdict.passed, verdict
    assert len(verdict.rows) == 5 and all(row.ok for row in verdict.rows)
    assert live["products"].find_one({"_id": 7})["name"] == "Teapot"  # only the scratch copy changed
    assert live[SCRATCH].find_one({"_id": 7})["version"] == PRODUCT["version"] + 3


def test_check_then_act_fails_when_a_second_projector_writes_in_between(live):
    verdict = judge(live, _check_then_act)
    assert not verdict.passed
    assert [row.ok for row in verdict.rows] == [True, True, True, True, False]
    assert "second projector had already applied v5" in verdict.answer
    assert "conditional `update_one`" in verdict.hint


@pytest.mark.parametrize("rule, failing_delivery, says", [
    (unchecked, 2, "it returned 'applied' and left the document at v3"),
    (replacing, 1, "the write changed or removed"),
    (never_gap, 4, "it returned 'duplicate'"),
    (no_return, 1, "your function returned None"),
    (crashing, 1, "your function raised KeyError: 'title' at `return event.payload[\"title\"]`"),
])
def test_each_mistake_fails_at_the_delivery_that_exposes_it(live, rule, failing_delivery, says):
    verdict = judge(live, rule)
    assert not verdict.passed
    assert len(verdict.rows) == failing_delivery and not verdict.rows[-1].ok
    assert says in verdict.answer, verdict.answer


def test_the_stub_is_not_answered(live):
    verdict = judge(live, stub)
    assert not verdict.passed and not verdict.answered


def test_a_product_missing_from_the_read_model_says_to_run_the_cells_above(read_db):
    verdict = judge(read_db, conditional)
    assert not verdict.passed and "Run All Above" in verdict.hint
