"""Notebook 03, events and the projector: the version check, predicted and then written.

03.1 (predict): which outcome each of three deliveries gets from the projector's version check.
03.2 (modify): the version-checked rule for a new event type, `product.renamed`, run on a copy
of a live read-model document, including a delivery raced by a second projector.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.interleaving import Interleaved
from cqrs_demo.course.predictions import choices
from cqrs_demo.course.student_code import run
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.messaging.events import Event
from cqrs_demo.read.versioned import apply_versioned

NOTEBOOK = "03_events_and_the_projector"
OUTCOMES = ("applied", "duplicate", "gap")

DELIVERY_OUTCOMES = Exercise(
    id="03.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="Which outcome does each delivery get?",
    goal="Before the experiment runs, predict for each of three deliveries whether the projector applies it, "
         "skips it as a duplicate, or holds it back as a gap.",
    checker=choices(*OUTCOMES),
    hints=(
        "Compare each event's version with the document's: the rule applies version v only to a document at "
        "version v − 1.",
        "The document is at the version of the event we copied from the queue; the same event again carries "
        "that very version.",
        "An event at or below the document's version changes nothing; one that skips a version waits for it.",
    ),
    wrong_answer=["applied", "duplicate", "gap"],
    why="The document already has the event's version v: the same event and an older one match nothing "
        "(duplicates, acknowledged and dropped); v + 2 needs v + 1 first, so it is a gap, tried again later.",
)

# -- 03.2 -----------------------------------------------------------------------------------

RENAMED = "product.renamed"
SCRATCH = "exercise_03_2"  # a copy of the live document, so the read model itself stays true


@dataclass(frozen=True)
class Delivery:
    """One step of the scenario: an event, what the rule does with it, and what it leaves behind."""

    what: str
    event: Event
    outcome: str
    version: int
    name: str
    hint: str
    competing: tuple[Event, ...] = ()  # applied by a second projector between the student's read and write


def renamed(document: dict[str, Any], version: int, name: str) -> Event:
    return Event(
        event_id=str(uuid.uuid4()), type=RENAMED, aggregate_type="product", aggregate_id=document["_id"],
        aggregate_version=version, position=document.get("position", 0) + version,
        committed_at=datetime.now(timezone.utc).isoformat(), payload={"name": name},
    )


def deliveries(document: dict[str, Any]) -> list[Delivery]:
    v, name = document["version"], document["name"]
    first = renamed(document, v + 1, f"{name} (renamed)")
    raced = renamed(document, v + 2, f"{name} (second rename)")
    newest = renamed(document, v + 3, f"{name} (third rename)")
    return [
        Delivery(f"v{v + 1}, the next version", first, "applied", v + 1, first.payload["name"],
                 "An event of version v applies to the document at version v − 1: put `_id` and "
                 "`version: v - 1` in `update_one`'s filter, and `$set` the name and the new version."),
        Delivery(f"v{v + 1} again", first, "duplicate", v + 1, first.payload["name"],
                 "A document already at the event's version must not change, and the answer is "
                 "\"duplicate\" when the document's version is the event's or newer."),
        Delivery(f"v{v}, an older one", renamed(document, v, f"{name} (stale)"), "duplicate", v + 1,
                 first.payload["name"], "An event older than the document changes nothing: a duplicate."),
        Delivery(f"v{v + 3}, two ahead", renamed(document, v + 3, f"{name} (too early)"), "gap", v + 1,
                 first.payload["name"],
                 "When nothing matched and the document is more than one version behind, answer \"gap\": "
                 "the projector puts the event back and tries again later."),
        Delivery(f"v{v + 2} while a second projector applies v{v + 2} and v{v + 3}", raced, "duplicate", v + 3,
                 newest.payload["name"],
                 "Another projector moved the document on between your read and your write. Make the version "
                 "check part of the write itself (one conditional `update_one`), not a read before it.",
                 competing=(raced, newest)),
    ]


def check_renamed_rule(apply_renamed: Callable[[Any, Event], Any], read_db, product_id: int) -> Verdict:
    """Run the student's rule on a copy of the product's live read document, delivery by delivery.

    Each delivery is compared with what the projector's own rule (`apply_versioned`) does: the
    outcome returned, and the document left behind. The first difference is the verdict.
    """
    live = read_db["products"].find_one({"_id": product_id})
    if live is None:
        return Verdict(False, "not run", f"product {product_id} is not in the read model yet",
                       hint="Run the notebook's cells above this one first (Run → Run All Above).")
    scratch = read_db[SCRATCH]
    scratch.drop()
    scratch.insert_one(live)
    # Compared with the copy as stored, not as read from the live collection: a server may hand
    # back some types (dates) differently from how they were given.
    untouched = {key: value for key, value in scratch.find_one({"_id": product_id}).items()
                 if key not in ("name", "version")}
    rows: list[Row] = []
    steps = deliveries(live)
    for step in steps:
        collection = scratch
        if step.competing:
            collection = Interleaved(scratch, lambda events=step.competing: _second_projector(scratch, events))
        ran = run(apply_renamed, collection, step.event)
        document = scratch.find_one({"_id": product_id}) or {}
        got = getattr(ran.result, "value", ran.result)
        problem = _problem(step, ran.error, got, document, untouched)
        expected = f"{step.outcome}; document at v{step.version} named {step.name!r}"
        rows.append(Row(step.what, _described(ran.error, got, document), expected, problem is None))
        if problem:
            return Verdict(False, f"delivery {len(rows)} of {len(steps)} ({step.what}): {problem}",
                           f"the projector's rule gives {expected}", hint=step.hint, rows=tuple(rows))
    return Verdict(True, f"all {len(steps)} deliveries handled as the projector's rule handles them",
                   "the same outcomes and the same document after each delivery", rows=tuple(rows))


def _second_projector(scratch, events: tuple[Event, ...]) -> None:
    for event in events:
        apply_versioned(scratch, event.aggregate_id, event.aggregate_version, {"name": event.payload["name"]})


def _problem(step: Delivery, error: str | None, got: Any, document: dict, untouched: dict) -> str | None:
    if error:
        return f"your function raised {error}"
    if got not in OUTCOMES:
        return f"your function returned {got!r}, not one of {', '.join(map(repr, OUTCOMES))}"
    lost = sorted(key for key in untouched if document.get(key) != untouched[key])
    if lost:
        return f"the write changed or removed {', '.join(lost)}: a rename must change only the name and version"
    if document.get("version", 0) < step.version and step.competing:
        return (f"it returned {got!r} and left the document at v{document.get('version')}: a second projector had "
                f"already applied v{step.version}, and your write put an older state over it")
    if (got, document.get("version"), document.get("name")) != (step.outcome, step.version, step.name):
        return f"it returned {got!r} and left the document at v{document.get('version')} named {document.get('name')!r}"
    return None


def _described(error: str | None, got: Any, document: dict) -> str:
    if error:
        return f"raised {error}"
    return f"{got!r}; document at v{document.get('version')} named {document.get('name')!r}"


def _check_then_act(products, event: Event) -> str:
    """Right one call at a time, wrong under concurrency: the check is a read before the write."""
    current = products.find_one({"_id": event.aggregate_id})
    if current["version"] >= event.aggregate_version:
        return "duplicate"
    if current["version"] < event.aggregate_version - 1:
        return "gap"
    products.update_one({"_id": event.aggregate_id},
                        {"$set": {"name": event.payload["name"], "version": event.aggregate_version}})
    return "applied"


RENAME_RULE = Exercise(
    id="03.2",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="The version check for a new event type",
    goal="Write apply_renamed(products, event) for the new event `product.renamed`: apply it exactly once and "
         "in order, and return \"applied\", \"duplicate\" or \"gap\".",
    checker=check_renamed_rule,
    hints=(
        "One `update_one` whose filter holds both the `_id` and the version the document must be at "
        "(the event's version − 1); `$set` the new name and the event's version.",
        "`update_one` returns a result with `matched_count`: 1 means applied. If it is 0, read the document's "
        "version to tell a duplicate (at or past the event) from a gap (behind it).",
        "Why not read first and then write? Between the two, another projector may write: the check must be "
        "part of the write, which MongoDB applies to one document atomically.",
    ),
    wrong_answer=_check_then_act,
    why="The version check sits in the write's filter, so MongoDB tests and changes the document in one atomic "
        "step: a second projector cannot slip in between, and a duplicate or an early event matches nothing.",
)
