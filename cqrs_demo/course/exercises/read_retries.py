"""Exercise 05.2's scenario: the student's read-your-write function, against a read model held behind.

`read_your_write(client, product_id, version, budget)` is called three times, each time with a
client of its own, whose `history` is the record of every request the function sent and when:

    behind      the projector is paused and stays paused: the read model cannot catch up, so the
                function must give up once its budget is spent and return the last 503
    catches up  the projector is still paused, and is resumed as soon as the function has had its
                first 503: the function must ask again and return the new version
    deleted     a product deleted long ago: its 404 will not change by waiting, so it must come
                back at once, after a single request

The projector is resumed by the check, never by luck: on the function's first 503, or at the
latest a few seconds after a budget the function ignores (which the verdict then says). Each
call is given a bounded time to return; the projector runs again whatever the function did.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from cqrs_demo.course.student_code import Ran, run
from cqrs_demo.lab.client import Exchange, WorkbenchClient
from cqrs_demo.polling import wait_until

GIVE_UP_BUDGET = 4.0  # seconds: long enough for one retry after the first 503
WAIT_BUDGET = 30.0  # seconds: far more than the projector needs to come back
SLACK = 1.5  # seconds a call may overrun "budget + one request's wait" on a busy machine
RETRY_AFTER_TOLERANCE = 0.1  # seconds: a sleep of exactly Retry-After counts as honouring it


@dataclass(frozen=True)
class Call:
    """One call of the student's function, and every request it sent."""

    scenario: str  # "behind", "catches up" or "deleted"
    product_id: int
    version: int
    budget: float
    ran: Ran | None  # None: it had not returned when the check stopped waiting for it
    requests: list[Exchange]
    seconds: float
    resumed_at: float | None  # seconds into the call at which the check resumed the projector

    def early_retry(self) -> tuple[float, float] | None:
        """(waited, asked) for the first request sent sooner after a 503 than its Retry-After said."""
        for answer, following in zip(self.requests, self.requests[1:]):
            if answer.status != 503:
                continue
            asked = _retry_after(answer)
            waited = following.sent_at - (answer.sent_at + answer.elapsed_ms / 1000)
            if waited < asked - RETRY_AFTER_TOLERANCE:
                return waited, asked
        return None


def _retry_after(answer: Exchange) -> float:
    try:
        return float(answer.headers.get("Retry-After", 0))
    except ValueError:
        return 0.0


ReadYourWrite = Callable[[Any, int, int, float], Any]
Judge = Callable[[Call], Any]  # what is wrong with a call, or None


def run_read_retries(read_your_write: ReadYourWrite, stack, judge: Judge) -> list[tuple[Call, Any]]:
    """Each call with what `judge` found wrong with it, up to the first one it found wrong."""
    client = WorkbenchClient.for_stack(stack)
    kettle_id, spoon_id, spoon_gone = _scratch_products(client)
    wait_seconds = stack.settings.read_wait_seconds
    judged: list[tuple[Call, Any]] = []
    try:
        stack.pause("projector")
        try:
            changed = _accepted(client.update_product(kettle_id, price="39.00"))
            behind = _call(read_your_write, stack, "behind", kettle_id, changed["version"], GIVE_UP_BUDGET,
                           resume_on_503=False, resume_at=GIVE_UP_BUDGET + wait_seconds + 2 * SLACK)
            judged.append((behind, judge(behind)))
            if judged[-1][1] is None:
                catches_up = _call(read_your_write, stack, "catches up", kettle_id, changed["version"],
                                   WAIT_BUDGET, resume_on_503=True, resume_at=WAIT_BUDGET)
                judged.append((catches_up, judge(catches_up)))
        finally:
            stack.resume("projector")
        if judged[-1][1] is None:
            deleted = _call(read_your_write, stack, "deleted", spoon_id, spoon_gone, GIVE_UP_BUDGET,
                            resume_on_503=False, resume_at=None)
            judged.append((deleted, judge(deleted)))
    finally:
        client.delete_product(kettle_id)  # the notebook's own products are left as they were
    return judged


def _scratch_products(client: WorkbenchClient) -> tuple[int, int, int]:
    """A kettle to change, and a spoon already deleted; both in the read model. (ids, deleted version)"""
    tag = uuid.uuid4().hex[:6].upper()
    kettle = _accepted(client.create_product("Exercise 05.2 kettle", "35.00", 3, f"EX05-{tag}-KETTLE"))
    spoon = _accepted(client.create_product("Exercise 05.2 spoon", "2.50", 10, f"EX05-{tag}-SPOON"))
    gone = _accepted(client.delete_product(spoon["id"]))
    wait_until(lambda: client.product(kettle["id"], min_version=kettle["version"]).status == 200, timeout=30,
               what="the exercise's kettle in the read model")
    wait_until(lambda: client.product(spoon["id"], min_version=gone["version"]).status == 404, timeout=30,
               what="the exercise's spoon deleted in the read model")
    return kettle["id"], spoon["id"], gone["version"]


def _call(read_your_write: ReadYourWrite, stack, scenario: str, product_id: int, version: int, budget: float,
          resume_on_503: bool, resume_at: float | None) -> Call:
    """Call the function in a thread of its own, and resume the projector from this one when due.

    The projector is started from the calling thread: a child process gets SIGTERM when the
    thread that started it ends (`runtime.processes`), so never from a short-lived one.
    """
    client = WorkbenchClient.for_stack(stack)
    outcome: dict[str, Any] = {}
    returned = threading.Event()
    started = time.monotonic()

    def call() -> None:
        outcome["ran"] = run(read_your_write, client, product_id, version, budget)
        outcome["seconds"] = time.monotonic() - started
        returned.set()

    threading.Thread(target=call, name=f"exercise-05.2-{scenario}", daemon=True).start()
    resumed_at = None
    # A function that never returns is left running (it is a daemon thread), and reported as such.
    give_up_at = started + budget + (resume_at or 0) + 30
    while not returned.wait(0.05) and time.monotonic() < give_up_at:
        if resumed_at is not None:
            continue
        got_503 = resume_on_503 and any(answer.status == 503 for answer in list(client.history))
        if got_503 or (resume_at is not None and time.monotonic() - started >= resume_at):
            resumed_at = time.monotonic() - started
            stack.resume("projector")
    return Call(scenario, product_id, version, budget, outcome.get("ran"), list(client.history),
                outcome.get("seconds", time.monotonic() - started), resumed_at)


def _accepted(exchange: Exchange) -> dict:
    if not exchange.ok:
        raise RuntimeError(f"exercise 05.2's scenario: {exchange.method} {exchange.url} answered "
                           f"{exchange.status} {exchange.body}")
    return exchange.body
