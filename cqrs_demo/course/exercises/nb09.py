"""Notebook 09, evolving a live system: an upcaster of one's own, retries, and the watermark.

09.1 (modify): the upcaster from version 1 of the product events to version 2, judged on each
version-1 event the stack committed, then registered in an upcaster registry through which the
stack's whole event log is replayed by the projection's own code, compared with the write model.
09.2 (predict): how many orders a client creates by sending one order N times with one key.
09.3 (predict): where the watermark is while the projector is paused and orders are placed.
"""

from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.predictions import number_within, one_of
from cqrs_demo.course.student_code import run
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.messaging import events, product
from cqrs_demo.messaging.events import Event, MalformedEvent
from cqrs_demo.read import projection
from cqrs_demo.read.upcasting import Upcasters
from cqrs_demo.write.event_log import event_log
from cqrs_demo.write.schema import products

NOTEBOOK = "09_evolving_a_live_system"
UPCAST_TYPES = (events.PRODUCT_CREATED, events.PRODUCT_UPDATED)
SHOWN_STEPS = 5  # rows of the verdict's table for the events that went right


# -- 09.1 -----------------------------------------------------------------------------------


def expected_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """What version 2 of a version-1 product payload must be: the same fields, the price named in its currency."""
    return {**payload, "price": events.price_v2(payload["price"])}


def check_upcaster(upcast_price: Callable[[dict], dict], stack) -> Verdict:
    """Judge the student's upcaster on every version-1 product event the stack committed, then replay.

    Each event first: the upcast payload must be exactly version 2 of it. Then the upcaster is
    registered in a registry of its own, and the whole event log (version 1 and 2 alike) is
    replayed through it by the projection's own `changes`; every product must end as its row in
    the write model. The replay is kept in memory: a wrong upcaster never reaches the live read model.
    """
    log = list(event_log(stack.engine))
    old = [event for event in log if event.type in UPCAST_TYPES and event.schema_version == 1]
    if not old:
        raise RuntimeError("exercise 09.1 needs version-1 product events in the stack's event log")
    rows: list[Row] = []
    for event in old:
        failed = _judged(upcast_price, event, rows)
        if failed:
            return failed
    shown = rows[:SHOWN_STEPS] + ([Row(f"... and {len(rows) - SHOWN_STEPS} more", "", "", True)]
                                  if len(rows) > SHOWN_STEPS else [])
    return _replayed(upcast_price, stack, log, len(old), shown)


def _judged(upcast_price, event: Event, rows: list[Row]) -> Verdict | None:
    """The verdict on one event if the upcaster got it wrong, else None (and a row added)."""
    given = dict(event.payload)
    ran = run(upcast_price, dict(event.payload))
    got = f"raised {ran.error}" if ran.error else ran.result
    wanted = expected_v2(given)
    item = f"{event.type} v1 of product {event.aggregate_id} (position {event.position})"
    rows.append(Row(item, _shown(got), _shown(wanted), got == wanted))
    if got == wanted:
        return None
    return Verdict(False, f"for the {item}, your upcaster gave {_shown(got)}", f"{_shown(wanted)}",
                   hint=_hint_for(got, wanted), rows=tuple(rows))


def _replayed(upcast_price, stack, log: list[Event], upcast: int, rows: list[Row]) -> Verdict:
    registry = Upcasters({(event_type, 1): upcast_price for event_type in UPCAST_TYPES})
    try:
        replayed = replay_products(log, registry)
    except ReplayFailed as failure:
        rows.append(Row(f"replaying position {failure.event.position} ({failure.event.type})", str(failure.cause),
                        "applied", False))
        return Verdict(False, f"replaying the event log through your upcaster failed at position "
                              f"{failure.event.position} ({failure.event.type}): {failure.cause}",
                       "every event applied", rows=tuple(rows))
    expected = written_products(stack.engine)
    item = f"the event log replayed through your upcaster: {len(log)} events, {upcast} of them upcast"
    wrong = sorted(pid for pid in set(expected) | set(replayed)
                   if pid not in expected or _differs(expected[pid], replayed.get(pid)))
    if wrong:
        pid = wrong[0]
        rows.append(Row(item, f"product {pid}: {_shown(replayed.get(pid))}", f"{_shown(expected.get(pid))}", False))
        return Verdict(False, f"replayed through your upcaster, product {pid} ends as {_shown(replayed.get(pid))} "
                              f"({len(wrong)} product(s) differ)",
                       f"{_shown(expected.get(pid))}, as its row in PostgreSQL says", rows=tuple(rows))
    rows.append(Row(item, f"{len(expected)} products as in the write model", "every product as in the write model",
                    True))
    return Verdict(True, f"an upcaster that turned {upcast} version-1 events into version 2",
                   f"the products replayed from all {len(log)} events through it, each equal to its row",
                   rows=tuple(rows))


def _differs(expected: dict[str, Any], replayed: dict[str, Any] | None) -> bool:
    return replayed is None or any(replayed.get(name) != value for name, value in expected.items())


class ReplayFailed(Exception):
    def __init__(self, event: Event, cause: Exception) -> None:
        super().__init__(f"position {event.position}: {cause}")
        self.event, self.cause = event, cause


def replay_products(log: list[Event], registry: Upcasters) -> dict[int, dict[str, Any]]:
    """The product documents the projection's own `changes` build from `log`, read through `registry`.

    A replay of the whole log, in position order, meets each product's events once and in version
    order, so each change simply lands on its document; in memory, so that a wrong upcaster never
    touches a read model.
    """
    documents: dict[int, dict[str, Any]] = {}
    for event in log:
        if event.aggregate_type != "product":
            continue
        try:
            found = projection.changes(registry.upcast(event), {"rebuilt": True})
        except (MalformedEvent, KeyError, TypeError, ValueError) as exc:
            raise ReplayFailed(event, exc) from None
        for change in found:
            if change.collection == projection.PRODUCTS:
                documents.setdefault(change.doc_id, {}).update({**change.set, "version": change.version})
    return {pid: document for pid, document in documents.items() if not document.get("deleted")}


def written_products(engine) -> dict[int, dict[str, Any]]:
    """Each product row of the write model, in the fields and form the read model stores."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(products)).mappings().all()
    return {row["id"]: {"version": row["version"], **product.stored(product.payload(row))} for row in rows}


def _hint_for(got: Any, wanted: dict[str, Any]) -> str:
    if not isinstance(got, dict):
        return "Return the new payload, a dict: the upcaster is given the old payload and returns version 2 of it."
    missing = sorted(wanted.keys() - got.keys())
    if missing:
        return (f"Your payload has lost {', '.join(missing)}: an upcaster changes only what changed between the "
                "versions. Start from a copy of the whole payload, `{**payload, ...}`.")
    price = got.get("price")
    if not isinstance(price, dict) or set(price) != {"amount", "currency"}:
        return 'Version 2 carries the price as {"amount": ..., "currency": ...}, not as a bare amount.'
    if price.get("currency") != events.CURRENCY:
        return f"Version 1's prices were all in the shop's one currency, {events.CURRENCY!r}: name it."
    return ("The amount must stay exactly the decimal string version 1 sent (\"12.50\"): a float or a number "
            "changes how money travels and may round.")


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _price_only(payload: dict[str, Any]) -> dict[str, Any]:
    """A plausible mistake: the new price written, every other field of the payload dropped."""
    return {"price": {"amount": payload["price"], "currency": events.CURRENCY}}


PRICE_UPCASTER = Exercise(
    id="09.1",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="An upcaster from version 1 to version 2",
    goal="Write upcast_price(payload): it is given the payload of a version-1 `product.created` or "
         "`product.updated` event and returns the same payload as version 2 carries it. The check runs it on every "
         "version-1 event of your stack, then rebuilds a read model from the whole event log through it.",
    checker=check_upcaster,
    hints=(
        "Compare a version-1 and a version-2 event in the table above: only the price differs.",
        "Keep every field (`{**payload, ...}`) and replace the price by "
        "`{\"amount\": payload[\"price\"], \"currency\": \"EUR\"}`.",
    ),
    wrong_answer=_price_only,
    why="Old events stay in the log for ever, in their old shape. An upcaster is a pure function from one version to "
        "the next, so the projection is written for the newest version only, and a rebuild from events written "
        "years ago reads them through the same chain.",
)


# -- 09.2 -----------------------------------------------------------------------------------

ORDERS_FROM_RETRIES = Exercise(
    id="09.2",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="How many orders do five retries place?",
    goal="A client whose request timed out sends the same order again, five times in all, every time with the same "
         "Idempotency-Key. Predict how many orders the shop has from it afterwards.",
    checker=number_within(absolute=0, unit="orders"),
    hints=(
        "The command service remembers each key with the answer its first request got, in the same transaction as "
        "the order itself.",
        "A request with a key already used, and the same body, gets the stored answer: does anything run?",
    ),
    wrong_answer=5,
    why="The first request placed the order and stored its answer under the key, in one transaction; the four "
        "retries found the key with the same request and got that answer again (`Idempotent-Replayed: true`), "
        "without running the command. One order, however often the client retries.",
)


# -- 09.3 -----------------------------------------------------------------------------------

WATERMARK_PLACES = ("where it was before the pause", "at the newest order's position", "at 0")

WATERMARK_WHILE_PAUSED = Exercise(
    id="09.3",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="The watermark while the projector is paused",
    goal="The projector is paused and three orders are placed; the relay keeps publishing them. Predict where "
         "`/api/projection`'s watermark is: " + ", ".join(f'"{place}"' for place in WATERMARK_PLACES) + ".",
    checker=one_of(*WATERMARK_PLACES),
    hints=(
        "The watermark promises that every event at or below it is in the read model.",
        "Published is not applied: which process writes to the read model?",
    ),
    wrong_answer="at the newest order's position",
    why="The watermark moves only when the events below it are applied; published events waiting in the queue do "
        "not count. It stays where it was, and its distance to the newest position is exactly the work waiting.",
)


def watermark_place(before: int, paused: dict[str, int]) -> str:
    """Which of WATERMARK_PLACES describes the watermark read while paused, given the one read before."""
    if paused["watermark"] == 0:
        return WATERMARK_PLACES[2]
    if paused["watermark"] >= paused["newest_position"]:
        return WATERMARK_PLACES[1]
    if paused["watermark"] == before:
        return WATERMARK_PLACES[0]
    return f"at {paused['watermark']}, between the two"
