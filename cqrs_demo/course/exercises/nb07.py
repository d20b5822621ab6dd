"""Notebook 07, crashes, duplicates and poison: at-least-once delivery, and the check that makes it harmless.

07.1 (predict): the relay is killed between RabbitMQ's confirm and marking the outbox row; once
restarted it publishes the event again. What does the projector do with that second copy?
07.2 (break and fix): the projector's version check turned off (`projector_dedup=False`), an
order's events delivered twice: which anomaly appears; then the check back on, and none.
07.3 (modify): a producer wrote a price with a decimal comma, the projector dead-lettered the
event; the student's repair goes into the outbox and the dead-letter queue is replayed.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, Callable, Mapping

import sqlalchemy as sa

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.predictions import anomaly_appears, one_of
from cqrs_demo.course.student_code import run
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.lab import faults
from cqrs_demo.lab.faults import Poison
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.read.projection import changes
from cqrs_demo.write.outbox import event_from_row
from cqrs_demo.write.schema import outbox

NOTEBOOK = "07_crashes_duplicates_and_poison"

# -- 07.1 -----------------------------------------------------------------------------------

FATES = ("applied again", "skipped as a duplicate", "held back as a gap", "never delivered again")


def fate_of_the_second_copy(status: Mapping[str, Any]) -> str:
    """What the projector's counters (`GET /api/projection`) say it did with a second copy of the one
    event a fresh stack has committed."""
    if status.get("reapplied", 0) or status.get("applied", 0) > 1:
        return "applied again"
    if status.get("duplicates", 0):
        return "skipped as a duplicate"
    if status.get("gaps", 0):
        return "held back as a gap"
    return "never delivered again"


def deliveries_handled(status: Mapping[str, Any]) -> int:
    """Every delivery the projector has dealt with, whatever it did with it."""
    return sum(status.get(name, 0) for name in ("applied", "duplicates", "gaps", "reapplied", "overwrote_newer"))


SECOND_COPY = Exercise(
    id="07.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="The relay died before marking: what happens to the second copy?",
    goal="RabbitMQ confirmed the event and the projector applied it, but the relay died before marking its "
         "outbox row. Restarted, the relay publishes the row again. Predict what the projector does with "
         "that second copy.",
    checker=one_of(*FATES),
    hints=(
        "The restarted relay cannot tell whether an unmarked row reached RabbitMQ, so it publishes it again: "
        "the copy does arrive. What version does the copy carry, and what version is the document at?",
        "The projector applies version v only to a document at version v − 1 (notebook 03). The document is "
        "already at version 1, and the copy is version 1 again.",
    ),
    wrong_answer="applied again",
    why="The outbox gives at-least-once delivery: a row not marked is published again. The projector's version "
        "check turns the second copy into a duplicate, acknowledged and dropped: delivered twice, applied once.",
)

# -- 07.2 -----------------------------------------------------------------------------------

ANOMALIES = ("events lost", "events applied twice", "events applied out of order")

WITHOUT_THE_VERSION_CHECK = Exercise(
    id="07.2",
    kind=Kind.BREAK_AND_FIX,
    notebook=NOTEBOOK,
    title="Without the version check",
    goal="Turn the projector's version check off, deliver an order's three events a second time, and predict "
         "which anomaly the counters show; then turn it back on and see them stay at zero.",
    checker=anomaly_appears(*ANOMALIES),
    hints=(
        "Nothing is dropped on the way: each event arrives twice. What does a projector that no longer compares "
        "versions do with an event it has already applied?",
        "A stock change carries the units sold as an increment (`$inc`): applied a second time, the sale counts "
        "twice. Which counter counts an event applied more than once?",
    ),
    wrong_answer="events lost",
    why="Without the version check a redelivered event is applied again: nothing is lost and nothing overtakes, "
        "but every increment counts twice. With it, the copy is a duplicate and changes nothing.",
)

# -- 07.3 -----------------------------------------------------------------------------------


def check_repaired_price(repaired_price: Callable[[str], Any], stack, poison: Poison) -> Verdict:
    """Repair the poisoned event's price with the student's function, then replay the dead letters.

    The repaired event is first read as the projector reads it (`projection.changes`), and its
    price compared with the one the command wrote: a repair that would poison the event again, or
    put a wrong price in the read model, is refused before it reaches the outbox.
    Then the outbox row is repaired, the dead-letter queue replayed, and the product must reach
    its latest version with nothing left parked or dead-lettered.
    """
    event = _event_at(stack, poison.position)
    broken, truth = poison.price_written, Decimal(poison.original["price"])
    ran = run(repaired_price, broken)
    if ran.error:
        return Verdict(False, f"repaired_price({broken!r}) raised {ran.error}", f"{truth}", hint=_FORMAT_HINT)
    repaired = {**event.payload, "price": ran.result}
    try:
        changes(dataclasses.replace(event, payload=repaired))
    except MalformedEvent as exc:
        return Verdict(False, f"repaired_price({broken!r}) returned {ran.result!r}: the projector would reject it "
                              f"again ({exc})", f"a price the projector can read, {truth}", hint=_FORMAT_HINT)
    if Decimal(str(ran.result)) != truth:
        return Verdict(False, f"repaired_price({broken!r}) returned {ran.result!r}",
                       f"{truth}, the price the command wrote", hint=_VALUE_HINT)
    if _product_version(stack, event.aggregate_id, "read") >= _product_version(stack, event.aggregate_id, "write"):
        return _caught_up(stack, event.aggregate_id, broken, ran.result, replayed=None)  # a check run again
    with stack.engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.position == poison.position).values(payload=repaired))
    replayed = faults.replay_dead_letters(stack)
    return _caught_up(stack, event.aggregate_id, broken, ran.result, replayed)


def _caught_up(stack, product_id: int, broken: str, repaired: Any, replayed: int | None) -> Verdict:
    try:
        wait_until(lambda: _product_version(stack, product_id, "read") >= _product_version(stack, product_id, "write")
                   and stack.read_db["parked"].count_documents({}) == 0, 30, what="the held product to catch up")
    except WaitTimeout:
        pass
    read, written = _product_version(stack, product_id, "read"), _product_version(stack, product_id, "write")
    versions = f"v{read} of v{written}"
    dead = len(faults.dead_letters(stack))
    rows = (
        Row("the price", f"{broken!r} → {repaired!r}", "the product's price", True),
        Row("replayed from the dead-letter queue", "earlier" if replayed is None else str(replayed), "1",
            replayed in (None, 1)),
        Row("the product in the read model", versions, "its latest version", read >= written),
        Row("still dead-lettered", str(dead), "0", dead == 0),
    )
    passed = all(row.ok for row in rows)
    return Verdict(passed, f"{broken!r} repaired to {repaired!r}, {replayed or 'already'} replayed",
                   f"the product at {versions}, {dead} dead-lettered", rows=rows,
                   hint=None if passed else "Run the cells of section 4 again from the top, then this check.")


def _event_at(stack, position: int) -> Event:
    with stack.engine.connect() as conn:
        return event_from_row(conn.execute(sa.select(outbox).where(outbox.c.position == position)).one())


def _product_version(stack, product_id: int, side: str) -> int:
    if side == "write":
        return int(stack.sql("SELECT version FROM products WHERE id = :id", id=product_id)["version"][0])
    document = stack.read_db["products"].find_one({"_id": product_id}, {"version": 1})
    return document["version"] if document else 0


_FORMAT_HINT = ("The projector reads a price as decimal text with a point, like \"12.50\". What character did the "
                "producer write instead of the point?")
_VALUE_HINT = "Keep every digit: only the separator is wrong. `text.replace(...)` is enough."


def _unchanged(price: str) -> str:
    """A plausible mistake: replaying without repairing anything."""
    return price


REPAIRED_PRICE = Exercise(
    id="07.3",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="Repair the poison, then replay the dead letters",
    goal="Write repaired_price(text) that turns the price the buggy producer wrote into one the projector reads. "
         "The check repairs the event in the outbox with it, replays the dead-letter queue, and needs the "
         "product at its latest version with nothing left dead-lettered.",
    checker=check_repaired_price,
    hints=(
        "Look at the broken event in the table above: which character stands where the decimal point belongs?",
        _VALUE_HINT,
    ),
    wrong_answer=_unchanged,
    why="A dead-letter queue keeps what could not be applied, so nothing is lost: once the producer's data is "
        "fixed at its source, the outbox, a replay sends the corrected event and the projector applies it and the "
        "parked events behind it, in order.",
)
