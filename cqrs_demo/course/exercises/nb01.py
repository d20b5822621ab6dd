"""Notebook 01, meet the stack: where a change has got to, predicted and then found by code.

01.1 (predict): with the relay stopped, which places a new product has reached, from the
products table to the query service's answer.
01.2 (modify): a function that lists the products whose read-model document is behind their
row, run with the projector paused (two products behind) and again once it has caught up (none).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.exercises.returned import whole_numbers
from cqrs_demo.course.predictions import choices
from cqrs_demo.course.student_code import Ran, run
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.polling import wait_until
from cqrs_demo.read import projection
from cqrs_demo.write.schema import products

NOTEBOOK = "01_meet_the_stack"

WHEREABOUTS = Exercise(
    id="01.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="Where is the new product while the relay is stopped?",
    goal="With the relay stopped, a product is created. Predict for each place on its way, from the products "
         "table to the query service's answer, whether it has reached it: \"yes\" or \"no\".",
    checker=choices("yes", "no"),
    hints=(
        "Follow the diagram of section 3 from the top: which boxes are before the relay, and which after it?",
        "The command service's transaction writes both PostgreSQL tables; everything after that is carried by "
        "the relay.",
    ),
    wrong_answer=["yes", "yes", "yes", "no", "no"],
    why="The command's transaction wrote the row and its event in the outbox; the relay is what carries the event "
        "on to RabbitMQ, so nothing past the outbox has it. The event is not lost: it waits in the outbox, and the "
        "relay publishes it as soon as it runs again.",
)

# -- 01.2 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BehindRun:
    """What the student's function returned with the projector paused, and once it caught up."""

    changed_id: int  # changed while paused: its document is one version behind
    created_id: int  # created while paused: it has no document yet
    in_sync: list[int]  # every other product, its document at its row's version
    paused: Ran
    caught_up: Ran


def run_with_projector_paused(products_behind: Callable[[Any], Any], stack) -> BehindRun:
    client = WorkbenchClient.for_stack(stack)
    tag = uuid.uuid4().hex[:6].upper()
    cup = client.create_product("Exercise 01.2 cup", "4.00", 5, f"EX01-{tag}-CUP")
    _require(cup.status == 201, f"creating a product answered {cup.status}: {cup.body}")
    wait_until(lambda: client.product(cup.body["id"], min_version=1).status == 200, timeout=30,
               what="the new product in the read model")
    stack.pause("projector")
    try:
        changed = client.update_product(cup.body["id"], price="4.50")
        created = client.create_product("Exercise 01.2 saucer", "2.00", 5, f"EX01-{tag}-SAUCER")
        _require(changed.ok and created.ok, f"the scenario's commands answered {changed.status}, {created.status}")
        behind = _behind(stack)
        paused = run(products_behind, stack)
    finally:
        stack.resume("projector")
    _require(wait_until_equal(stack.engine, stack.read_db, 30)["equal"],
             "the read model did not catch up within 30 s once the projector was back")
    in_sync = sorted(set(_all_ids(stack)) - set(behind))
    return BehindRun(cup.body["id"], created.body["id"], in_sync, paused, run(products_behind, stack))


def check_products_behind(products_behind: Callable[[Any], Any], stack) -> Verdict:
    """Run the student's function with the projector paused, then again once it has caught up.

    With the projector paused, one product is changed (its document is a version behind) and one
    is created (it has no document yet): both must be listed, and no product in sync. Once the
    projector has caught up, nothing must be listed.
    """
    ran = run_with_projector_paused(products_behind, stack)
    expected = (
        (ran.changed_id, f"product {ran.changed_id}: version 2 in PostgreSQL, 1 in MongoDB", _VERSION_HINT),
        (ran.created_id, f"product {ran.created_id}: version 1 in PostgreSQL, no document in MongoDB", _MISSING_HINT),
    )
    expected_ids = sorted(product_id for product_id, _, _ in expected)
    listed, problem = _ids(ran.paused)
    if problem:
        return Verdict(False, f"with the projector paused, your function {problem}", f"the ids {expected_ids}",
                       hint=_RETURN_HINT)
    checks = [(Row(what, "listed" if pid in listed else "not listed", "listed", pid in listed), hint)
              for pid, what, hint in expected]
    wrongly = sorted(listed & set(ran.in_sync))
    checks.append((Row(f"the {len(ran.in_sync)} products in sync", f"listed {wrongly}" if wrongly else "not listed",
                       "not listed", not wrongly), _SYNC_HINT))
    rows = [row for row, _ in checks]
    wrong = [(row, hint) for row, hint in checks if not row.ok]
    if wrong:
        return Verdict(False, f"with the projector paused, it returned {sorted(listed)}",
                       f"{expected_ids}; {wrong[0][0].item}", hint=wrong[0][1], rows=tuple(rows))
    listed_after, problem = _ids(ran.caught_up)
    shown = problem or str(sorted(listed_after))
    rows.append(Row("once the projector caught up", shown, "[]", problem is None and not listed_after))
    if not rows[-1].ok:
        return Verdict(False, f"once the projector had caught up, it {problem or f'returned {shown}'}",
                       "[]: every document at its row's version", hint=_SYNC_HINT, rows=tuple(rows))
    return Verdict(True, f"{sorted(listed)} with the projector paused, [] once it caught up",
                   "the same: the two products behind, then none", rows=tuple(rows))


_RETURN_HINT = "Return a list of product ids (whole numbers), e.g. [3, 7]; an empty list when none is behind."
_MISSING_HINT = ("A product created while the projector is paused has a row in PostgreSQL and no document in "
                 "MongoDB at all: count a missing document as behind.")
_VERSION_HINT = ("A product changed while the projector is paused has a document, but an older one: compare "
                 "each row's `version` with its document's `version`.")
_SYNC_HINT = "List only products whose document is missing or has a lower version than the row."


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"exercise 01.2 could not set up its scenario: {what}")


def _all_ids(stack) -> list[int]:
    with stack.engine.connect() as conn:
        return list(conn.scalars(products.select().with_only_columns(products.c.id)))


def _behind(stack) -> list[int]:
    """The check's own answer, to tell the products in sync from those behind."""
    with stack.engine.connect() as conn:
        written = dict(conn.execute(products.select().with_only_columns(products.c.id, products.c.version)).all())
    read = {doc["_id"]: doc.get("version", 0)
            for doc in stack.read_db[projection.PRODUCTS].find({"_id": {"$in": list(written)}}, {"version": 1})}
    return sorted(pid for pid, version in written.items() if read.get(pid, 0) < version)


def _ids(ran: Ran) -> tuple[set[int], str | None]:
    numbers, problem = whole_numbers(ran)
    return set(numbers), problem


def _missing_only(stack) -> list[int]:
    """A plausible mistake: a product counts as behind only when its document is missing."""
    written = stack.sql("SELECT id FROM products").id.tolist()
    read = {doc["_id"] for doc in stack.read_db["products"].find({}, {"_id": 1})}
    return [product_id for product_id in written if product_id not in read]


PRODUCTS_BEHIND = Exercise(
    id="01.2",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="Which products is the read model behind on?",
    goal="Write products_behind(stack): the ids of the products whose MongoDB document is missing or at an older "
         "version than their PostgreSQL row. The check runs it with the projector paused, then once it caught up.",
    checker=check_products_behind,
    hints=(
        "`stack.sql(\"SELECT id, version FROM products\")` gives every row's version; "
        "`stack.read_db[\"products\"].find({}, {\"version\": 1})` every document's.",
        "Put the documents' versions in a dict by `_id`; a product is behind when its row's version is greater "
        "than its document's, or when it has no document (count that as version 0).",
    ),
    wrong_answer=_missing_only,
    why="Each side keeps the version of the last change it holds, so comparing versions tells a lagging document "
        "from a current one, which comparing the fields alone cannot always do. This is what `SideBySide`'s state "
        "column and `cqrs-demo check` compare.",
)
