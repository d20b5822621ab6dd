"""Notebook 09's checks and lab steps on a real stack: the writer moves to version 2 under an old
projector, which holds what it cannot read; the stack's projector settles it; 09.1's check passes
with the solution and fails each classic mistake at the first version-1 event, leaving the live
read model as it was; keyed retries place one order (09.2); the watermark waits while the
projector is paused (09.3). One stack serves the module, as in test_exercise_checks.py.
"""

from __future__ import annotations

import uuid

import pytest

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises.nb09 import _price_only, watermark_place
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.evolution import (OldProjector, events_table, held_streams, send_again, watermark_and_newest,
                                     watermark_caught_up, write_product_events)
from cqrs_demo.polling import wait_until

from lab_fixtures import LabStacks, assert_caught_up, unpublished

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def evolved(base_settings, tmp_path_factory):
    """A stack whose teapot was repriced in version 2 while a projector that knows only version 1 ran."""
    stacks = LabStacks(base_settings, tmp_path_factory.mktemp("exercise-checks-09"))
    try:
        stack = stacks.start()
        client = WorkbenchClient.for_stack(stack)
        teapot = client.create_product("Teapot", "24.00", 10, "TEAPOT").body
        mug = client.create_product("Mug", "8.50", 50, "MUG").body
        old = OldProjector(stack).start()
        try:
            write_product_events(stack, 2)
            repriced = client.update_product(teapot["id"], price="26.00")
            assert repriced.status == 200
            wait_until(lambda: not held_streams(stack).empty, 30, what="the old projector to hold the teapot")
            held = held_streams(stack)
            in_read_model = client.product(teapot["id"]).body["version"]
        finally:
            old.stop()
        yield {"stack": stack, "client": client, "teapot": teapot, "mug": mug, "repriced": repriced.body,
               "held": held, "version_while_held": in_read_model}
    finally:
        stacks.teardown()


@pytest.fixture(autouse=True)
def consistent_afterwards(evolved):
    yield
    assert_caught_up(evolved["stack"])


def test_an_old_projector_holds_version_2_and_the_stacks_own_settles_it(evolved):
    stack, teapot = evolved["stack"], evolved["teapot"]
    assert list(events_table(stack, [teapot["id"]]).schema_version) == [1, 2]
    held = evolved["held"].loc[f"product:{teapot['id']}"]
    assert held.waits_for == 2 and "schema_version 2 is newer than 1" in held.reason
    assert evolved["version_while_held"] == 1, "nothing of version 2 applied wrongly"
    wait_until(lambda: held_streams(stack).empty, 30, what="the hold to be released")
    served = evolved["client"].product(teapot["id"], min_version=2)
    assert served.status == 200 and str(served.body["price"]) == "26.00"
    assert evolved["client"].projection().body["dead_lettered"] == 0


def solution(payload):
    return {**payload, "price": {"amount": payload["price"], "currency": "EUR"}}


def as_number(payload):
    return {**payload, "price": {"amount": float(payload["price"]), "currency": "EUR"}}


def stub(payload):
    """Not written yet."""
    ...


def served_versions(client) -> dict[int, int]:
    return {product["id"]: product["version"] for product in client.products().body}


def test_09_1_passes_with_the_solution_and_leaves_the_live_read_model_alone(evolved):
    stack = evolved["stack"]
    before = served_versions(evolved["client"])
    mark = watermark_and_newest(stack, evolved["client"])["watermark"]
    verdict = exercise("09.1").judge(solution, stack=stack)
    assert verdict.passed, verdict
    assert "2 version-1 events" in verdict.answer and verdict.rows[-1].ok
    assert served_versions(evolved["client"]) == before
    assert watermark_and_newest(stack, evolved["client"])["watermark"] >= mark


@pytest.mark.parametrize("answer, says", [(_price_only, "lost"), (as_number, "decimal string")])
def test_09_1_each_mistake_fails_at_the_first_version_1_event(evolved, answer, says):
    verdict = exercise("09.1").judge(answer, stack=evolved["stack"])
    assert not verdict.passed and says in verdict.hint
    assert f"product {evolved['teapot']['id']} (position" in verdict.answer


def test_09_1_stub_is_not_answered(evolved):
    verdict = exercise("09.1").judge(stub, stack=evolved["stack"])
    assert not verdict.passed and not verdict.answered


def test_09_2_five_keyed_sends_place_one_order_and_another_body_is_refused(evolved):
    stack, client, mug = evolved["stack"], evolved["client"], evolved["mug"]
    key = str(uuid.uuid4())
    order = {"customer": "grace", "lines": [{"sku": mug["sku"], "quantity": 1}]}
    before = int(stack.sql("SELECT count(*) AS n FROM orders").n[0])
    retries = send_again(client, "POST", "/api/orders", order, key, times=5)
    placed = int(stack.sql("SELECT count(*) AS n FROM orders").n[0]) - before
    assert placed == 1 and (retries.status == 201).all() and retries.id.nunique() == 1
    assert exercise("09.2").judge(1, observed=placed).passed
    assert not exercise("09.2").judge(exercise("09.2").wrong_answer, observed=placed).passed
    reused = send_again(client, "POST", "/api/orders", {**order, "lines": [{"sku": mug["sku"], "quantity": 2}]},
                        key, times=1)
    assert reused.status[1] == 422 and reused.error[1] == "idempotency_key_reused"
    assert int(stack.sql("SELECT count(*) AS n FROM orders").n[0]) - before == 1


def test_09_3_the_watermark_waits_while_the_projector_is_paused(evolved):
    stack, client, mug = evolved["stack"], evolved["client"], evolved["mug"]
    before = watermark_caught_up(stack, client)
    stack.pause("projector")
    try:
        for _ in range(3):
            assert client.place_order("hopper", [{"sku": mug["sku"], "quantity": 1}]).status == 201
        wait_until(lambda: unpublished(stack) == 0, 30, what="the relay to publish the orders")
        paused = watermark_and_newest(stack, client)
    finally:
        stack.resume("projector")
    observed = watermark_place(before["watermark"], paused)
    assert observed == "where it was before the pause" and paused["newest_position"] > before["watermark"]
    assert exercise("09.3").judge("where it was before the pause", observed=observed).passed
    assert not exercise("09.3").judge(exercise("09.3").wrong_answer, observed=observed).passed
    watermark_caught_up(stack, client)
