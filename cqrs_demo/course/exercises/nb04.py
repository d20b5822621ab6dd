"""Notebook 04, the read model: what an order writes to the event stream, and a read view of one's own.

04.1 (predict): how many events placing a two-line order appends to the outbox.
04.2 (modify): a new read view, products per price band, kept up to date from live events and
then rebuilt from the event log, each time compared with the write model.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.predictions import number_within
from cqrs_demo.course.student_code import run
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.lab.event_feed import EventTap, event_log
from cqrs_demo.lab.price_bands import price_band

NOTEBOOK = "04_the_read_model"
VIEW = "exercise_04_2"  # the student's view, beside the read model's own collections

ORDER_EVENTS = Exercise(
    id="04.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="How many events does one order append?",
    goal="Ada orders two blue mugs and a teapot: one order, two lines. Predict how many events that one command "
         "appends to the outbox.",
    checker=number_within(absolute=0, unit="events"),
    hints=(
        "Which aggregates does placing the order change? The order is new, and the stock of each product ordered "
        "goes down.",
        "Every change to an aggregate is an event on that aggregate's own stream, with its next version.",
    ),
    wrong_answer=1,
    why="One event creates the order (`order.placed`), and each line takes stock from a product, which is a change "
        "to that product: a `product.stock_changed` event on its own stream, at its next version. So the read "
        "side applies stock and sales under the same exactly-once rule as every other product change.",
)

# -- 04.2 -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScratchProduct:
    """A product the check creates (and deletes again), and the band the view must end with."""

    name: str
    story: str
    band: str | None  # None: deleted, so not in the view


def check_price_band_view(apply_to_price_bands: Callable[[Any, Any], Any], stack) -> Verdict:
    """Feed the student's function live events, then rebuild the view from the event log; compare both times.

    Live: a private queue receives the events of six commands the check sends (a price moved across
    a band, a quantity change, a product deleted, a price on a boundary); the view must then hold
    exactly the surviving products, each in its band. Rebuilt: the view is dropped and every event
    ever committed (`cqrs_demo.write.event_log`) is replayed through the same function; the view must then agree with the write
    model's every row.
    """
    view = stack.read_db[VIEW]
    view.drop()
    client = WorkbenchClient.for_stack(stack)
    rows: list[Row] = []
    with EventTap(stack) as tap:
        scratch, positions = _live_commands(client)
        try:
            verdict = _fed_live(apply_to_price_bands, view, tap.take(positions), scratch, rows)
        finally:
            _remove(client, scratch)
    return verdict or _rebuilt(apply_to_price_bands, stack, view, rows)


def _fed_live(apply_to_price_bands, view, events, scratch: dict[int, ScratchProduct], rows: list[Row]):
    """The verdict on the live phase if it failed, else None."""
    failed = _feed(apply_to_price_bands, view, events, "live", rows)
    if failed:
        return failed
    for product_id, product in scratch.items():
        document = view.find_one({"_id": product_id})
        got = document.get("band") if document else None
        rows.append(Row(f"live: {product.name}, {product.story}", _band_shown(got), _band_shown(product.band),
                        got == product.band))
        if got != product.band:
            return Verdict(False, f"after the live events, {product.name} ({product.story}) is "
                                  f"{_band_shown(got)} in your view", f"{_band_shown(product.band)}",
                           hint=_DELETED_HINT if product.band is None else _BAND_HINT, rows=tuple(rows))
    return None


def _live_commands(client) -> tuple[dict[int, ScratchProduct], list[int]]:
    tag = uuid.uuid4().hex[:6].upper()
    cup = _accepted(client.create_product("Exercise 04.2 cup", "9.50", 5, f"EX04-{tag}-CUP"))
    vase = _accepted(client.create_product("Exercise 04.2 vase", "30.00", 1, f"EX04-{tag}-VASE"))
    plate = _accepted(client.create_product("Exercise 04.2 plate", "10.00", 3, f"EX04-{tag}-PLATE"))
    commands = [cup, vase, plate,
                _accepted(client.update_product(cup["id"], price="15.00")),
                _accepted(client.update_product(cup["id"], quantity=7)),
                _accepted(client.delete_product(vase["id"]))]
    scratch = {
        cup["id"]: ScratchProduct("the cup", "created at 9.50, then repriced 15.00, then restocked", "10 to 20"),
        vase["id"]: ScratchProduct("the vase", "created at 30.00, then deleted", None),
        plate["id"]: ScratchProduct("the plate", "created at 10.00", "10 to 20"),
    }
    return scratch, [command["position"] for command in commands]


def _rebuilt(apply_to_price_bands, stack, view, rows: list[Row]) -> Verdict:
    view.drop()
    replayed = list(event_log(stack))
    failed = _feed(apply_to_price_bands, view, replayed, "rebuild", rows)
    if failed:
        return failed
    expected = {int(row.id): price_band(row.price) for row in stack.sql("SELECT id, price FROM products").itertuples()}
    found = {document["_id"]: document.get("band") for document in view.find({})}
    wrong = sorted(pid for pid in set(expected) | set(found) if expected.get(pid) != found.get(pid))
    item = f"rebuilt from the event log: {len(replayed)} events, {len(expected)} products"
    if wrong:
        pid = wrong[0]
        rows.append(Row(item, f"product {pid}: {_band_shown(found.get(pid))}",
                        f"product {pid}: {_band_shown(expected.get(pid))}", False))
        return Verdict(False, f"rebuilt from the event log's {len(replayed)} events, your view has product {pid} "
                              f"{_band_shown(found.get(pid))} ({len(wrong)} product(s) differ)",
                       f"{_band_shown(expected.get(pid))}, as its row in PostgreSQL says",
                       hint=_DELETED_HINT if pid not in expected else _BAND_HINT, rows=tuple(rows))
    rows.append(Row(item, "every product in its band", "every product in its band", True))
    return Verdict(True, "a view that follows live events and is rebuilt from the event log",
                   f"the same bands as the {len(expected)} rows of the write model, live and rebuilt", rows=tuple(rows))


def _feed(apply_to_price_bands, view, events, phase: str, rows: list[Row]) -> Verdict | None:
    """Apply each event with the student's function; the verdict on the first one that raised, if any."""
    for event in events:
        ran = run(apply_to_price_bands, view, event)
        if ran.error:
            what = f"{phase}: the {event.type} event at position {event.position}"
            rows.append(Row(what, f"raised {ran.error}", "applied or ignored", False))
            hint = _OTHER_EVENTS_HINT if event.type not in ("product.created", "product.updated") else _BAND_HINT
            return Verdict(False, f"{what} made your function raise {ran.error}",
                           "every event applied or ignored", hint=hint, rows=tuple(rows))
    return None


def _remove(client, scratch: dict[int, ScratchProduct]) -> None:
    """Delete the check's products that are left, so the shop is as the notebook built it."""
    for product_id, product in scratch.items():
        if product.band is not None:
            client.delete_product(product_id)


def _accepted(exchange) -> dict:
    if not exchange.ok:
        raise RuntimeError(f"exercise 04.2's scenario: {exchange.method} {exchange.url} answered "
                           f"{exchange.status} {exchange.body}")
    return exchange.body


def _band_shown(band: str | None) -> str:
    return f"in band {band!r}" if band else "not in the view"


_BAND_HINT = ("`product.created` and `product.updated` carry the product's whole new state: "
              "`price_band(event.payload[\"price\"])` is its band. Write it with an upsert, so the first event "
              "of a product creates its document.")
_DELETED_HINT = "A `product.deleted` event must take the product out of the view (`delete_one`)."
_OTHER_EVENTS_HINT = ("Every event of the stream reaches your function, orders' too, and a stock change carries "
                      "no price: look at `event.type` and leave alone the events that do not change a band.")


def _ignores_deletes(view, event) -> None:
    """A plausible mistake: bands kept up to date, deletions forgotten."""
    if event.type in ("product.created", "product.updated"):
        view.update_one({"_id": event.aggregate_id}, {"$set": {"band": price_band(event.payload["price"])}},
                        upsert=True)


PRICE_BAND_VIEW = Exercise(
    id="04.2",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="A read view of your own, rebuilt from the event log",
    goal="Write apply_to_price_bands(view, event) so that `view` holds one document per existing product, "
         "{\"_id\": its id, \"band\": price_band(its price)}. The check feeds it live events, then rebuilds the "
         "view from every event ever committed, and compares it with the write model each time.",
    checker=check_price_band_view,
    hints=(
        "Only three event types change a band: `product.created` and `product.updated` (their payload holds the "
        "price) and `product.deleted`. Return without doing anything for the others.",
        "`view.update_one({\"_id\": event.aggregate_id}, {\"$set\": {\"band\": ...}}, upsert=True)` writes a "
        "product's band whether or not it is in the view yet; `view.delete_one({\"_id\": ...})` takes it out.",
    ),
    wrong_answer=_ignores_deletes,
    why="The events carry everything a view needs, so a view that did not exist yesterday can be built today by "
        "replaying the event log from the first event, and then kept current from the live stream. The write side "
        "never had to know this view would exist.",
)
