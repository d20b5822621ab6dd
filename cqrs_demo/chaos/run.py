"""A whole chaos run: a fresh stack, load and faults for `seconds`, quiet, evidence, verdict.

The stack is a `LabStack` in a namespace of its own (the student's, labelled `chaos_s<seed>`
unless told otherwise), emptied first, with the fault proxy in front of RabbitMQ and the
projection audit on. It is stopped at the end, pass or fail; its data stays for a look
(`cqrs-demo class reset --student ...` removes it).
"""

from __future__ import annotations

import time
from typing import Callable

from cqrs_demo.chaos import evidence, schedule
from cqrs_demo.chaos.injector import Injector
from cqrs_demo.chaos.load import ChaosLoad
from cqrs_demo.chaos.verdict import Verdict
from cqrs_demo import consistency
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.runtime import health

QUIET_TIMEOUT = 180.0  # after the load stops, the longest wait for the stack to settle
STILL_SECONDS = 10.0  # nothing applied for this long, with nothing left to apply: it has settled


def run(seconds: float = 300, seed: int = 1, label: str | None = None,
        say: Callable[[str], None] | None = None, **settings) -> Verdict:
    """Run the chaos for `seconds` with the schedule of `seed`; `settings` override the stack's
    (a guarantee switched off, say, to watch the verdict fail). `say` hears of each fault."""
    say = say or (lambda _: None)
    stack = LabStack(label or f"chaos_s{seed}", faults=True, projection_audit=True, **settings)
    say(f"starting a fresh stack in namespace {stack.settings.namespace} ...")
    stack.start(fresh=True)
    try:
        return _drive(stack, seconds, seed, say)
    finally:
        stack.stop()


def _drive(stack, seconds: float, seed: int, say) -> Verdict:
    load = ChaosLoad(stack.command_url, stack.query_url, seed).start()
    injector = Injector(stack, seed)
    started = time.monotonic()
    try:
        for fault in schedule.plan(seconds, seed):
            # Faults are done one after another; under load they run late. Past the run's end,
            # the rest are dropped once every kind has happened, so `seconds` bounds the run.
            overdue = time.monotonic() - started >= seconds
            if overdue and all(injector.injected[kind] for kind in schedule.KINDS):
                break
            time.sleep(max(0.0, started + fault.at - time.monotonic()))
            say(f"{time.monotonic() - started:6.1f}s  {fault.kind}")
            try:
                injector.inject(fault)
            except Exception as exc:  # the run goes on; the verdict names the fault that never took effect
                injector.notes.append(f"at {fault.at:g}s {fault.kind} failed: {exc!r}")
        time.sleep(max(0.0, started + seconds - time.monotonic()))
    finally:
        load.stop()
    say(f"{time.monotonic() - started:6.1f}s  load stopped; waiting for quiet ...")
    quiet_from = time.monotonic()
    replayed = injector.recover()
    _wait_for_quiet(stack)
    found = evidence.gather(stack, load.positions)
    return Verdict(seed=seed, seconds=seconds, faults=dict(injector.injected), commands=load.commands,
                   accepted=load.accepted, evidence=found, time_to_quiet=time.monotonic() - quiet_from,
                   replayed_at_end=replayed, duplicates_sent=injector.duplicates, answers=load.answers_by_status(),
                   refusals=load.refusals, notes=injector.notes)


def _wait_for_quiet(stack, timeout: float = QUIET_TIMEOUT) -> bool:
    """Until the outbox is published, the queue empty and the application log no longer growing,
    with the read model equal to the write model, or no longer changing for `STILL_SECONDS` (a
    read model that went wrong stays wrong: waiting longer would only delay the verdict).
    False if neither happens in `timeout`."""
    logged: list[tuple[int, float]] = []

    def quiet() -> bool:
        count = stack.read_db[APPLICATIONS].count_documents({})
        if not logged or logged[-1][0] != count:
            logged.append((count, time.monotonic()))
            return False
        counts = health.projector_queue_counts(stack.observer_settings)
        if counts is None or counts[0]:
            return False
        comparison = consistency.compare(stack.engine, stack.read_db)
        if comparison["unpublished_events"]:
            return False
        return comparison["equal"] or time.monotonic() - logged[-1][1] >= STILL_SECONDS

    try:
        return wait_until(quiet, timeout, interval=0.5, what="the stack to be quiet")
    except WaitTimeout:
        return False  # the evidence says what never settled
