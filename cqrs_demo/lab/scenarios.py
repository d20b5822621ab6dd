"""Scripted scenarios: the same burst and the same outage, against one delivery design at a time.

`outage_burst` sends a steady stream of product updates, cuts the stack's link to RabbitMQ in
the middle of it, restores the link, lets everything settle and then counts the anomalies,
next to the counts each design predicts:
- outbox: nothing lost, nothing applied twice, nothing out of order; the backlog drains.
- naive: at least every event committed while the broker was unreachable (and until the
  projector's new exclusive queue exists again) is lost, and more: publishes into connections
  that died without the service noticing yet vanish too. Lost updates leave products stale.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pandas as pd

from cqrs_demo.consistency import wait_until_equal
from cqrs_demo.lab import anomalies
from cqrs_demo.lab.faults import broker_outage
from cqrs_demo.lab.lag import LagMonitor
from cqrs_demo.lab.load import LoadGenerator
from cqrs_demo.polling import wait_until
from cqrs_demo.runtime.health import projector_consumers


@dataclass
class ScenarioResult:
    mode: str
    table: pd.DataFrame
    load: pd.DataFrame
    lag: pd.DataFrame
    outage: tuple[float, float] = (0.0, 0.0)
    notes: list[str] = field(default_factory=list)

    @property
    def observed(self) -> dict:
        return self.table["observed"].to_dict()


def outage_burst(stack, commands: int = 300, rate: float = 100.0, outage_at: float = 1.0,
                 outage_for: float = 1.0, progress: bool = True) -> ScenarioResult:
    """Run the burst with an outage on `stack` (a LabStack started with faults and audit on)."""
    load = LoadGenerator(stack, products=20)
    load.prepare()
    wait_until_equal(stack.engine, stack.read_db, 30)
    window: dict[str, float] = {}
    failed: list[Exception] = []

    def stage_outage() -> None:
        try:
            time.sleep(outage_at)
            with broker_outage(stack):
                window["cut"] = time.time()
                time.sleep(outage_for)
            window["restored"] = time.time()
            # The outage lasts, for the projector, until it is consuming again.
            wait_until(lambda: projector_consumers(stack.settings) >= 1, timeout=30, what="the projector to reconnect")
            window["back"] = time.time()
        except Exception as exc:  # raised again below, in the caller's thread
            failed.append(exc)

    outage = threading.Thread(target=stage_outage, name="outage")
    with LagMonitor(stack, interval=0.1) as monitor:
        outage.start()
        frame = load.run(commands=commands, rate=rate, threads=8, progress=progress, wait_visible=False)
        outage.join()
        if failed:
            raise RuntimeError(f"the staged outage did not end as planned: {failed[0]}\n"
                               f"the projector's last log lines:\n{stack.logs('projector', 15)}") from failed[0]
        settled = wait_until_equal(stack.engine, stack.read_db, 15 if stack.settings.naive else 60)
    observed = anomalies.measure(stack)
    exact = {"events committed": observed["events committed"], "events applied twice": 0,
             "events applied out of order": 0}
    if stack.settings.naive:
        at_least = {"events lost": anomalies.committed_between(stack, window["cut"], window["back"]),
                    "products stale at the end": 1}
        predicted = {**exact, **{name: (value, ">=") for name, value in at_least.items()}}
    else:
        predicted = {**exact, "events lost": 0, "products stale at the end": 0}
    notes = [] if settled["equal"] else [f"{settled['difference_count']} differences remain between the stores"]
    return ScenarioResult(stack.settings.delivery, anomalies.compare(predicted, observed), frame, monitor.frame,
                          (window["cut"], window["restored"]), notes)
