"""The checks of the exercises that drive a running stack (01.2, 02.2, 04.2), on a real one.

Each check is judged with its solution (it must pass), with the stub of the student's edition (not
answered), and with the classic mistakes (each must fail, at the step that exposes it, with a
message that names what happened). One stack serves the whole module: every check drives its own
scenario with products of its own, and leaves the stack running and consistent.
"""

from __future__ import annotations

import pytest

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises.nb04 import VIEW
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.price_bands import price_band
from cqrs_demo.runtime import health

from lab_fixtures import LabStacks, assert_caught_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def stack(base_settings, tmp_path_factory):
    stacks = LabStacks(base_settings, tmp_path_factory.mktemp("exercise-checks"))
    try:
        stack = stacks.start()
        client = WorkbenchClient.for_stack(stack)
        for name, price, sku in (("Teapot", "24.00", "TEAPOT"), ("Mug", "8.50", "MUG")):
            assert client.create_product(name, price, 5, sku).status == 201
        order = client.place_order("ada", [{"sku": "TEAPOT", "quantity": 1}])
        assert order.status == 201 and client.cancel_order(order.body["id"]).ok
        yield stack
    finally:
        stacks.teardown()


@pytest.fixture(autouse=True)
def consistent_afterwards(stack):
    """Whatever a check did, the stack it leaves behind runs and catches up."""
    yield
    assert_caught_up(stack)


def judge(exercise_id: str, answer, stack):
    return exercise(exercise_id).judge(answer, stack=stack)


# -- 01.2: products behind -----------------------------------------------------------------------


def behind_by_version(stack):
    rows = stack.sql("SELECT id, version FROM products")
    read = {doc["_id"]: doc["version"] for doc in stack.read_db["products"].find({}, {"version": 1})}
    return [int(row.id) for row in rows.itertuples() if read.get(row.id, 0) < row.version]


def every_product(stack):
    return stack.sql("SELECT id FROM products").id.tolist()


def as_a_frame(stack):
    return stack.sql("SELECT id FROM products")


def stub(stack):
    """Not written yet."""
    ...


def test_01_2_passes_on_the_version_comparison(stack):
    verdict = judge("01.2", behind_by_version, stack)
    assert verdict.passed, verdict
    assert [row.ok for row in verdict.rows] == [True, True, True, True]


def test_01_2_fails_when_only_missing_documents_count(stack):
    verdict = judge("01.2", exercise("01.2").wrong_answer, stack)
    assert not verdict.passed
    assert "version 2 in PostgreSQL, 1 in MongoDB" in verdict.observed
    assert "older one" in verdict.hint
    assert health.projector_consumers(stack.observer_settings) == 1, "the check resumed the projector"


@pytest.mark.parametrize("answer, says", [
    (every_product, "products in sync"),
    (as_a_frame, "returned a whole DataFrame"),
])
def test_01_2_names_what_is_wrong(stack, answer, says):
    verdict = judge("01.2", answer, stack)
    assert not verdict.passed
    assert says in verdict.answer + verdict.observed, verdict


def test_01_2_stub_is_not_answered(stack):
    verdict = judge("01.2", stub, stack)
    assert not verdict.passed and not verdict.answered


# -- 02.2: the relay's query ----------------------------------------------------------------------


def unpublished_rows(stack, last_position):
    return stack.sql("SELECT position FROM outbox WHERE published_at IS NULL ORDER BY position").position.tolist()


def next_in_sequence(stack, last_position):
    """Waits for the next number: stalls at the first row that is not committed yet."""
    rows = stack.sql("SELECT position FROM outbox WHERE position > :last ORDER BY position", last=last_position)
    batch, expected = [], last_position + 1
    for position in rows.position:
        if position != expected:
            break
        batch.append(int(position))
        expected += 1
    return batch


def the_whole_outbox(stack, last_position):
    return stack.sql("SELECT position FROM outbox ORDER BY position").position.tolist()


def newest_first(stack, last_position):
    return stack.sql("SELECT position FROM outbox WHERE published_at IS NULL ORDER BY position DESC").position.tolist()


def test_02_2_passes_on_the_unpublished_rows(stack):
    verdict = judge("02.2", unpublished_rows, stack)
    assert verdict.passed, verdict
    assert len(verdict.rows) == 4 and all(row.ok for row in verdict.rows)


def test_02_2_a_position_cursor_loses_the_late_commit(stack):
    verdict = judge("02.2", exercise("02.2").wrong_answer, stack)
    assert not verdict.passed
    assert [row.ok for row in verdict.rows] == [True, True, False]
    assert "committed after position" in verdict.answer and "it is lost" in verdict.answer
    assert "not when its transaction commits" in verdict.hint


@pytest.mark.parametrize("answer, failing_round, says", [
    (next_in_sequence, 2, "is committed and not published yet"),
    (the_whole_outbox, 1, "had been published already"),
    (newest_first, 1, "not in position order"),
])
def test_02_2_each_mistake_fails_at_the_round_that_exposes_it(stack, answer, failing_round, says):
    verdict = judge("02.2", answer, stack)
    assert not verdict.passed
    assert len(verdict.rows) == failing_round and not verdict.rows[-1].ok
    assert says in verdict.answer, verdict.answer


# -- 04.2: a read view of one's own ---------------------------------------------------------------


def bands(view, event):
    if event.type == "product.deleted":
        view.delete_one({"_id": event.aggregate_id})
    elif event.type in ("product.created", "product.updated"):
        view.update_one({"_id": event.aggregate_id}, {"$set": {"band": price_band(event.payload["price"])}},
                        upsert=True)


def every_product_event(view, event):
    if event.type == "product.deleted":
        view.delete_one({"_id": event.aggregate_id})
    elif event.aggregate_type == "product":
        view.update_one({"_id": event.aggregate_id}, {"$set": {"band": price_band(event.payload["price"])}},
                        upsert=True)


def test_04_2_passes_live_and_rebuilt_and_cleans_up(stack):
    before = stack.sql("SELECT count(*) AS n FROM products").n[0]
    verdict = judge("04.2", bands, stack)
    assert verdict.passed, verdict
    assert [row.ok for row in verdict.rows] == [True] * 4
    assert stack.sql("SELECT count(*) AS n FROM products").n[0] == before, "the check deleted its products"
    rows = stack.sql("SELECT id, price FROM products")
    assert {doc["_id"]: doc["band"] for doc in stack.read_db[VIEW].find({})} == \
        {int(row.id): price_band(row.price) for row in rows.itertuples()}, "the view, rebuilt, stays for a look"


def test_04_2_fails_when_deletions_are_ignored(stack):
    verdict = judge("04.2", exercise("04.2").wrong_answer, stack)
    assert not verdict.passed
    assert "the vase (created at 30.00, then deleted)" in verdict.answer
    assert "delete_one" in verdict.hint


def test_04_2_a_stock_change_without_a_price_fails_at_the_rebuild(stack):
    verdict = judge("04.2", every_product_event, stack)
    assert not verdict.passed
    assert "rebuild: the product.stock_changed event" in verdict.answer and "KeyError" in verdict.answer
    assert "a stock change carries no price" in verdict.hint
