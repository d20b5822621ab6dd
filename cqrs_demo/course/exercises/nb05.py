"""Notebook 05, eventual consistency: a stale read predicted, and a client that reads its own writes.

05.1 (predict): with the projector paused after a price change, what a plain GET of the product
answers, and what a GET with `?min_version=<the new version>` answers.
05.2 (modify): `read_your_write(client, product_id, version, budget)`, which asks again on
`503 read_model_behind` as Retry-After says, returns a 404 at once and gives up after its budget;
run against the live stack with the projector held back (`read_retries`).
"""

from __future__ import annotations

import time
from typing import Any

from cqrs_demo.course.definition import Exercise, Kind
from cqrs_demo.course.exercises.read_retries import SLACK, Call, run_read_retries
from cqrs_demo.course.predictions import choices
from cqrs_demo.course.verdict import Row, Verdict
from cqrs_demo.lab.reads import OUTCOMES

NOTEBOOK = "05_eventual_consistency"

_outcomes = choices(*OUTCOMES)


def check_two_reads(prediction: Any, observed: dict[str, str]) -> Verdict:
    """One outcome per read; 404 and 503 may be given as numbers, as status codes often are."""
    if isinstance(prediction, (list, tuple)):
        prediction = [str(outcome) if outcome in (404, 503) else outcome for outcome in prediction]
    return _outcomes(prediction, observed)


TWO_READS = Exercise(
    id="05.1",
    kind=Kind.PREDICT,
    notebook=NOTEBOOK,
    title="Two reads while the projector is stopped",
    goal="The projector is stopped and a price change has just been committed. Predict what the query service "
         "answers to a plain GET of the product, and to a GET with `?min_version=` the version the change created: "
         "\"200 new\", \"200 old\", \"404\" or \"503\".",
    checker=check_two_reads,
    hints=(
        "The query service reads MongoDB only, and nothing has told MongoDB about the change yet. Does a plain GET "
        "know there is anything newer?",
        "`min_version` says \"this version or newer, or nothing\": when the read model cannot give that version "
        "in time, which status says \"not now, try again later\"?",
    ),
    wrong_answer=["200 new", "200 new"],
    why="The query service answers from the read model alone: a plain GET gets what MongoDB holds, the old "
        "version, with a 200, since nothing there is wrong, only late. With `min_version` the client says which "
        "version it needs; after waiting its bounded time the service refuses with 503 `read_model_behind` and a "
        "`Retry-After`, rather than pass stale data off as current.",
)

# -- 05.2 -----------------------------------------------------------------------------------


def check_read_your_write(read_your_write, stack) -> Verdict:
    """Run the student's function while the read model stays behind, while it catches up, and on a deleted product.

    Every call must honour Retry-After; the first returns the last 503 once its budget is spent,
    the second the new version, the third the 404 after one request.
    """
    wait = stack.settings.read_wait_seconds
    judged = run_read_retries(read_your_write, stack, lambda call: _problem(call, wait))
    rows = tuple(Row(_SCENARIOS[call.scenario].format(budget=call.budget), _shown(call),
                     _EXPECTED[call.scenario].format(allowed=call.budget + wait), problem is None)
                 for call, problem in judged)
    call, problem = judged[-1]
    if problem is not None:
        what, hint = problem
        return Verdict(False, f"{_SCENARIOS[call.scenario].format(budget=call.budget)}: {what}",
                       _EXPECTED[call.scenario].format(allowed=call.budget + wait), hint=hint, rows=rows)
    return Verdict(True, "gave up on time while the read model stayed behind, read the new version once it "
                         "caught up, took the 404 at once; never asked again before Retry-After",
                   "the same", rows=rows)


_SCENARIOS = {
    "behind": "the read model stays behind (budget {budget:g} s)",
    "catches up": "the read model catches up after your first 503 (budget {budget:g} s)",
    "deleted": "a product deleted long ago (budget {budget:g} s)",
}
_EXPECTED = {
    "behind": "the last 503, returned within about {allowed:g} s (the budget, plus one request's wait)",
    "catches up": "200 with the new version",
    "deleted": "the 404, after a single request",
}


def _problem(call: Call, wait: float) -> tuple[str, str] | None:
    """(what the function did wrong in this call, the hint for it), or None."""
    return _any_call_problem(call) or _SCENARIO_PROBLEMS[call.scenario](call, call.ran.result.status, wait)


def _any_call_problem(call: Call) -> tuple[str, str] | None:
    """What is wrong whatever the scenario: no return, an error, no request, no patience, not an answer."""
    if call.ran is None:
        return f"your function had not returned {call.seconds:.0f} s after it was called", _BUDGET_HINT
    if call.ran.error:
        return f"your function raised {call.ran.error}", _SHAPE_HINT
    if not call.requests:
        return "your function sent no request through `client`", _SHAPE_HINT
    early = call.early_retry()
    if early:
        waited, asked = early
        return (f"it asked again {waited:.2f} s after a 503 whose Retry-After said {asked:g} s "
                f"({len(call.requests)} requests in {call.seconds:.1f} s)", _RETRY_AFTER_HINT)
    if not isinstance(getattr(call.ran.result, "status", None), int):
        return f"it returned {call.ran.result!r}, not the query service's answer", _SHAPE_HINT
    return None


def _behind_problem(call: Call, status: int, wait: float) -> tuple[str, str] | None:
    if call.resumed_at is not None:
        return (f"it was still asking {call.resumed_at:.1f} s after it was called, with a budget of "
                f"{call.budget:g} s (it returned {status} only once the check let the read model catch up)",
                _BUDGET_HINT)
    if status != 503:
        return f"it returned {status} for a version the read model does not have", _SHAPE_HINT
    if call.seconds > call.budget + wait + SLACK:
        return f"it returned after {call.seconds:.1f} s, well past its budget of {call.budget:g} s", _BUDGET_HINT
    return None


def _catches_up_problem(call: Call, status: int, wait: float) -> tuple[str, str] | None:
    if status == 503:
        return (f"it gave up with a 503 after {len(call.requests)} request(s) and {call.seconds:.1f} s, with "
                f"{call.budget - call.seconds:.0f} s of its budget left, while the read model caught up", _RETRY_HINT)
    body = call.ran.result.body
    version = body.get("version") if status == 200 and isinstance(body, dict) else None
    if version is None or version < call.version:
        return f"it returned {status} with version {version}, not version {call.version}", _SHAPE_HINT
    return None


def _deleted_problem(call: Call, status: int, wait: float) -> tuple[str, str] | None:
    if status != 404 or len(call.requests) != 1:
        return f"it returned {status} after {len(call.requests)} requests", _NOT_FOUND_HINT
    return None


_SCENARIO_PROBLEMS = {"behind": _behind_problem, "catches up": _catches_up_problem, "deleted": _deleted_problem}


def _shown(call: Call) -> str:
    if call.ran is None or call.ran.error:
        return "did not return" if call.ran is None else f"raised {call.ran.error}"
    answer = call.ran.result
    status = getattr(answer, "status", answer)
    body = getattr(answer, "body", None)
    version = f" version {body['version']}" if status == 200 and isinstance(body, dict) and "version" in body else ""
    return f"{status}{version} after {len(call.requests)} request(s) in {call.seconds:.1f} s"


_SHAPE_HINT = ("Ask with `client.product(product_id, min_version=version)` and return what it gives back (the "
               "answer, with its `.status`, `.headers` and `.body`), whatever the status.")
_RETRY_AFTER_HINT = ("A 503 carries `Retry-After` (seconds) in `answer.headers`: sleep at least that long before "
                     "asking again, and longer after each further 503 (back-off), so that waiting clients do not "
                     "pile more load on a read model that is already behind.")
_RETRY_HINT = ("`503 read_model_behind` means \"not yet\": sleep as Retry-After says and ask again, for as long as "
               "the budget lasts.")
_BUDGET_HINT = ("Note the time when the function starts (`time.monotonic()`); before each sleep, check whether "
                "sleeping and asking again would go past `budget`, and if so return the last answer.")
_NOT_FOUND_HINT = ("Only a 503 is worth asking again: a 404 for a version the read model has reached means the "
                   "product is gone, and waiting will not bring it back. Return it at once.")


def _retries_at_once(client, product_id, version, budget=10.0):
    """A plausible mistake: ask again straight away while the budget lasts, whatever Retry-After says."""
    deadline = time.monotonic() + budget
    while True:
        answer = client.product(product_id, min_version=version)
        if answer.status != 503 or time.monotonic() >= deadline:
            return answer


READ_YOUR_WRITE = Exercise(
    id="05.2",
    kind=Kind.MODIFY,
    notebook=NOTEBOOK,
    title="A client that reads its own writes",
    goal="Write read_your_write(client, product_id, version, budget): ask for the product with `min_version`; "
         "on 503 ask again after Retry-After (and back off), return any other answer at once, and give up with the "
         "last 503 once `budget` seconds are spent.",
    checker=check_read_your_write,
    hints=(
        "A loop around `client.product(product_id, min_version=version)`: return the answer unless its `status` "
        "is 503.",
        "`float(answer.headers[\"Retry-After\"])` is how long the query service asks you to wait; double your own "
        "delay after each 503 and sleep the longer of the two.",
        "Keep `deadline = time.monotonic() + budget`; if `time.monotonic() + delay` would pass it, return the 503 "
        "you have instead of sleeping.",
    ),
    wrong_answer=_retries_at_once,
    why="A 503 with Retry-After is the read side saying \"behind, ask again later\": a client that honours it, and "
        "backs off, shows its user the write it made without hammering a read model that is catching up; a budget "
        "turns \"later\" into a clear answer (\"still saving...\") instead of a spinner that never ends; and only "
        "the 503 is worth a retry.",
)
