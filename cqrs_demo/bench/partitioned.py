"""Benchmark `partitioned_catchup`: 20,000 queued events caught up by 1, 2 and 4 projector
processes, on one queue (competing consumers, today's default) and on 4 partitions (single
active consumer per partition), in one run.

For each layout one stack is started; for each number of projectors its projector is paused,
the events are written and published (so they all wait in the queues), then that many projector
processes start at once and the clock runs until the status record has counted every event.
Per configuration: events/s (from the first application), gap retries (tries of an event whose
predecessor was not applied yet), and CPU seconds of the projector processes per
1,000 events. A configuration that has not caught up after `LIMIT_SECONDS` is reported as not
finished, with how far it got.
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import pandas as pd
import psutil

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab.stack import LabStack
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.read import queries
from cqrs_demo.runtime import processes

LIMIT_SECONDS = 120.0
LAYOUTS = {"one queue": 1, "4 partitions": 4}


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _catch_up(stack: LabStack, projectors: int, events: int) -> dict:
    """Queue `events` with the projector stopped, then start `projectors` of them and time the drain."""
    from cqrs_demo.bench.scenarios import _queue_events  # the catch-up scenario's own event writer

    stack.pause("projector")
    before = queries.projection_status(stack.read_db)
    _queue_events(stack, events)
    stack.wait_published(timeout=300)
    target = before["applied"] + before["duplicates"] + events
    started = time.monotonic()
    stack.stack.start_service("projector")
    extras = [processes.start_service("projector", stack.settings, stack.stack.directory / f"extra-projector-{n}.log")
              for n in range(projectors - 1)]
    pids = [stack.stack.processes["projector"].pid] + [p.pid for p in extras]
    timeline: list[tuple[float, int]] = []

    def done() -> bool:
        status = queries.projection_status(stack.read_db)
        counted = status["applied"] + status["duplicates"]
        timeline.append((time.monotonic() - started, counted - target + events))
        return counted >= target

    try:
        try:
            wait_until(done, timeout=LIMIT_SECONDS, interval=0.1, what="the catch-up")
            finished = True
        except WaitTimeout:
            finished = False
        elapsed_at_limit = time.monotonic() - started
        cpu = _cpu_seconds(pids)
        after = queries.projection_status(stack.read_db)
    finally:
        for extra in extras:
            extra.stop()
    if not finished:  # the next configuration starts from empty queues: the stack's projector drains them
        wait_until(done, timeout=600, interval=0.5, what="the rest of the events, after the limit")
    timeline = [point for point in timeline if point[0] <= elapsed_at_limit] if not finished else timeline
    first = next((t for t, n in timeline if n > 0), timeline[-1][0])
    elapsed = timeline[-1][0]
    caught = timeline[-1][1]
    return {
        "projectors": projectors,
        "finished": finished,
        "events_applied": caught,
        "seconds": round(elapsed, 3),
        "events_per_s": round(caught / max(elapsed - first, 1e-9), 1),
        "events_per_s_including_start": round(caught / elapsed, 1),
        "gap_retries": after["gaps"] - before["gaps"],
        "cpu_s_per_1000_events": round(cpu / max(caught, 1) * 1000, 3),
        "timeline": [(round(t, 2), n) for t, n in timeline[:: max(1, len(timeline) // 60)]],
    }


def partitioned_catchup(quick: bool = False) -> tuple[dict, dict, plt.Figure]:
    events = 2000 if quick else 20000
    counts = [1, 2] if quick else [1, 2, 4]
    results = {}
    for layout, partitions in LAYOUTS.items():
        stack = LabStack(namespace=f"bench_part{partitions}", partitions=partitions).start()
        try:
            for projectors in counts:
                results[f"{layout}, {projectors} projector(s)"] = {
                    "layout": layout, "partitions": partitions, **_catch_up(stack, projectors, events)}
            stack.resume("projector")
            converged = wait_until_equal(stack.engine, stack.read_db, 120)["equal"]
            for key in results:
                if results[key]["layout"] == layout:
                    results[key]["converged"] = converged
        finally:
            stack.stop()
    frame = pd.DataFrame(results.values())
    fig, (rate, gaps) = plt.subplots(1, 2, figsize=(9, 3.5))
    for layout, group in frame.groupby("layout"):
        rate.plot(group["projectors"], group["events_per_s"], marker="o", label=layout)
        gaps.plot(group["projectors"], group["gap_retries"], marker="o", label=layout)
    rate.set_xlabel("projector processes")
    rate.set_ylabel("events/s")
    rate.set_title("Catch-up of queued events")
    gaps.set_xlabel("projector processes")
    gaps.set_ylabel("gap retries")
    gaps.set_yscale("symlog")
    gaps.set_title("Gap retries")
    for ax in (rate, gaps):
        ax.set_xticks(counts)
        ax.legend()
    fig.tight_layout()
    return {"events": events, "products": 100, "projectors": counts, "layouts": LAYOUTS,
            "limit_seconds": LIMIT_SECONDS}, results, fig
