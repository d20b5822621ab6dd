"""Notebook 02, the write model: optimistic concurrency predicted, and a relay that loses nothing.

02.1 (predict): the status codes of two saves against the same version.
02.2 (modify): the query a relay uses to find the outbox rows to publish next, run as a relay
against the live outbox while transactions commit out of position order and one rolls back.
"""

from __future__ import annotations

from typing import Any, Callable

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.exercises.relay_rounds import RelayRun, run_relay_rounds
from cqrs_demo.course.predictions import choices
from cqrs_demo.course.verdict import Row, Verdict

NOTEBOOK = "02_the_write_model"

_status_codes = choices(200, 409, 412)


def check_status_codes(prediction: Any, observed: dict[str, int]) -> Verdict:
    """One status code per save; "412" counts as 412, since a code is easily typed in quotes."""
    if isinstance(prediction, (list, tuple)):
        prediction = [int(code) if isinstance(code, str) and code.strip().isdigit() else code for code in prediction]
    return _status_codes(prediction, observed)


TWO_SAVES = Exercise(
    id="02.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="Two saves against the same version",
    goal="Alice and Bob both saw the mug at the same version and each sends a change with that version in "
         "`If-Match`, Alice first. Predict the status code each one gets: 200, 409 or 412.",
    checker=check_status_codes,
    hints=(
        "`If-Match: v` means \"apply this only if the product is still at version v\". Is it still at v when "
        "Bob's request arrives?",
        "Alice's change was accepted, so it made a new version. 409 is for a conflict with the data itself (a "
        "duplicate sku, too little stock); which code says \"you changed an old version\"?",
    ),
    wrong_answer=[200, 200],
    why="Alice's save made a new version, so Bob's `If-Match` names a version the product is no longer at: 412 "
        "Precondition Failed, and nothing changes. Without the header, Bob's save would silently overwrite "
        "Alice's stock change (a lost update).",
)

# -- 02.2 -----------------------------------------------------------------------------------


def check_next_batch(next_batch: Callable[[Any, int], Any], stack) -> Verdict:
    """Run the student's query as the relay, round by round, while commits arrive out of order.

    Each round, what the function returns is really published to RabbitMQ and marked in the
    outbox, as the relay does. The expected batch of a round is every committed row not yet
    published, in position order: nothing lost, nothing twice, nothing held back.
    """
    ran = run_relay_rounds(next_batch, stack)
    rows = []
    for number, relay_round in enumerate(ran.rounds, start=1):
        problem, hint = _problem(relay_round, ran)
        rows.append(Row(f"round {number}: {relay_round.before}", relay_round.shown, str(relay_round.expected),
                        problem is None))
        if problem:
            return Verdict(False, f"round {number} ({relay_round.before}): {problem}",
                           f"a relay publishes {relay_round.expected}", hint=hint, rows=tuple(rows))
    return Verdict(True, "every round published exactly the committed rows not yet published, in order",
                   f"the same; no event lost, none published twice ({_summary(ran)})", rows=tuple(rows))


def _problem(relay_round, ran: RelayRun) -> tuple[str | None, str]:
    if relay_round.error:
        return f"your function {relay_round.error}", "Return a list of positions (whole numbers), oldest first."
    got, expected = relay_round.positions, relay_round.expected
    missing = [p for p in expected if p not in got]
    if missing:
        position = missing[0]
        if position == ran.late:
            return (f"position {position} committed after position {ran.early} had been published, and your relay "
                    f"did not publish it: it is lost (product {ran.late_product}'s change never reaches the read "
                    f"model)", _LATE_HINT)
        return (f"position {position} is committed and not published yet, and your relay did not publish it "
                f"(it returned {got})", _WAIT_HINT if position == ran.early else _UNPUBLISHED_HINT)
    if relay_round.republished:
        return (f"position {relay_round.republished[0]} had been published already, and your relay published it "
                f"again ({len(relay_round.republished)} such in this round)", _AGAIN_HINT)
    if relay_round.not_rows:
        return (f"your function returned position {relay_round.not_rows[0]}, which is no committed row of the "
                f"outbox", _UNPUBLISHED_HINT)
    if got != sorted(got):
        return f"it returned {got}, not in position order", _ORDER_HINT
    return None, ""


def _summary(ran: RelayRun) -> str:
    return (f"position {ran.late} committed after {ran.early}, and position {ran.hole} rolled back and was never "
            f"filled")


_LATE_HINT = ("A position is taken when the row is inserted, not when its transaction commits: a row can become "
              "visible after a higher position has been published. Ask for what is not published yet "
              "(`published_at`), not for what comes after the last position.")
_WAIT_HINT = ("Waiting for the next position in sequence never ends at a hole: a transaction that rolled back "
              "took a position that will never be filled. Publish every committed row not yet published.")
_UNPUBLISHED_HINT = ("Every committed row whose `published_at` is still empty is waiting to be published; the "
                     "relay marks a row only after the broker confirmed it.")
_AGAIN_HINT = "Rows already published carry a `published_at`: leave them out, or the broker gets them twice."
_ORDER_HINT = ("Publish oldest first (`ORDER BY position`): a product's events must reach the projector in "
               "version order.")


def _position_cursor(stack, last_position):
    """The classic mistake: remember the last position published and ask for the ones after it."""
    return stack.sql("SELECT position FROM outbox WHERE position > :last ORDER BY position",
                     last=last_position).position.tolist()


NEXT_BATCH = Exercise(
    id="02.2",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="A relay that loses nothing",
    goal="Write next_batch(stack, last_position): the outbox positions a relay should publish now, oldest "
         "first. The check runs it as the relay while one transaction commits late and another rolls back.",
    checker=check_next_batch,
    hints=(
        "A row's position is fixed when it is inserted, but the row is visible only once its transaction "
        "commits: can a lower position appear after a higher one has been published?",
        "The relay stamps `published_at` on each row once RabbitMQ confirmed it. Which rows does that make "
        "easy to find?",
        "`stack.sql(\"SELECT position FROM outbox WHERE ... ORDER BY position\")` returns a DataFrame; "
        "`.position.tolist()` turns its column into a list.",
    ),
    wrong_answer=_position_cursor,
    why="Positions are handed out at insert, commits happen in their own order, and a rollback leaves a hole. "
        "Asking for the rows not yet published (what our relay does, `WHERE published_at IS NULL ORDER BY "
        "position`) finds a late commit whatever its position, and never waits for a hole.",
)
