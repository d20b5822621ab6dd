"""Each kind of fault of a chaos run, done to a running `LabStack` the way it happens for real.

Every fault goes through what the workbench already has for it (`lab.faults`, `failpoints`, the
stack's process control) and returns only once it has taken effect and the stack has been put
back as an operator would put it back: a killed process restarted, an extra one stopped, a
fixed poison event replayed. What a fault could not do (a failpoint nobody passed in time) is
noted, not hidden: `Injector.notes`.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import sqlalchemy as sa

from cqrs_demo import failpoints
from cqrs_demo.chaos import schedule
from cqrs_demo.lab import faults
from cqrs_demo.lab.client import WorkbenchClient
from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.runtime import health, processes
from cqrs_demo.write.schema import outbox

TAKE_EFFECT_SECONDS = 30.0  # a failpoint is passed, a dead letter appears, a standby takes over
FAILPOINTS = {schedule.KILL_RELAY: ("relay", failpoints.RELAY_BEFORE_MARK),
              schedule.KILL_PROJECTOR: ("projector", failpoints.PROJECTOR_BEFORE_ACK)}


class Injector:
    def __init__(self, stack, seed: int) -> None:
        self.stack = stack
        self.rng = random.Random(f"{seed}-injector")
        self.client = WorkbenchClient.for_stack(stack)
        self.injected: Counter = Counter()  # kind -> how many took effect
        self.notes: list[str] = []
        self.poisons: list[faults.Poison] = []
        self.duplicates = 0

    def inject(self, fault: schedule.Fault) -> None:
        action = {
            schedule.BROKER_OUTAGE: self.broker_outage,
            schedule.KILL_RELAY: self.kill_at_failpoint,
            schedule.KILL_PROJECTOR: self.kill_at_failpoint,
            schedule.RESTART_MONGO: self.restart_mongo,
            schedule.REDELIVER: self.redeliver,
            schedule.SECOND_PROJECTOR: self.second_projector,
            schedule.STANDBY_RELAY: self.standby_relay,
            schedule.POISON: self.poison,
        }[fault.kind]
        if action(fault) is not False:
            self.injected[fault.kind] += 1

    # -- the faults --------------------------------------------------------------------------

    def broker_outage(self, fault) -> None:
        with faults.broker_outage(self.stack):
            time.sleep(fault.hold)

    def kill_at_failpoint(self, fault) -> bool:
        name, point = FAILPOINTS[fault.kind]
        process = self.stack.stack.processes[name]
        failpoints.arm(self.stack.settings, point)
        try:
            wait_until(lambda: not process.alive(), TAKE_EFFECT_SECONDS, interval=0.1, what=f"{name} to pass {point}")
        except WaitTimeout:
            failpoints.disarm(self.stack.settings, point)
            self.notes.append(f"at {fault.at:g}s: nothing passed {point} in {TAKE_EFFECT_SECONDS:g}s")
            return False
        self.stack.resume(name)  # restarted, and healthy again
        return True

    def restart_mongo(self, fault) -> None:
        faults.restart_mongo(self.stack)

    def redeliver(self, fault) -> bool:
        with self.stack.engine.connect() as conn:
            published = conn.scalars(
                sa.select(outbox.c.position).where(outbox.c.published_at.is_not(None))
                .order_by(outbox.c.position.desc()).limit(200)
            ).all()
        # A poisoned event is left out: its copy would be dead-lettered and held all over again.
        poisoned = {poison.position for poison in self.poisons}
        candidates = [position for position in published if position not in poisoned]
        if not candidates:
            self.notes.append(f"at {fault.at:g}s: no published event to redeliver yet")
            return False
        chosen = self.rng.sample(candidates, min(fault.size, len(candidates)))
        self.duplicates += faults.redeliver(self.stack, chosen)
        return True

    def second_projector(self, fault) -> None:
        extra = self._extra("projector")
        try:
            wait_until(lambda: health.projector_consumers(self.stack.observer_settings) >= 2, TAKE_EFFECT_SECONDS,
                       interval=0.2, what="the second projector to consume")
            time.sleep(fault.hold)
        finally:
            extra.stop()

    def standby_relay(self, fault) -> None:
        """A standby relay waits; the active one is SIGKILLed; the standby takes over; the old
        relay comes back as the standby, and the extra one is stopped, so the stack's own is
        active again at the end."""
        extra = self._extra("relay")
        try:
            time.sleep(fault.hold / 2)
            self.stack.kill("relay")
            wait_until(lambda: health.active_relays(self.stack.settings, self.stack.engine) >= 1, TAKE_EFFECT_SECONDS,
                       interval=0.2, what="the standby relay to take over")
            time.sleep(fault.hold / 2)
            self.stack.stack.start_service("relay")
        finally:
            extra.stop()
        self.stack.resume("relay")

    def poison(self, fault) -> None:
        """A product update with a corrupted payload, two updates parked behind it, then the
        producer fixed and the dead letter replayed."""
        created = self.client.create_product("poisoned later", "5.00", 100, f"POISON-{time.time_ns():x}")
        product_id = created.body["id"]
        poison = faults.inject_poison(self.stack, self.client, product_id)
        self.poisons.append(poison)
        for quantity in (90, 80):
            self.client.update_product(product_id, quantity=quantity)
        try:
            wait_until(lambda: len(faults.dead_letters(self.stack)) > 0, TAKE_EFFECT_SECONDS, interval=0.3,
                       what="the poison event to be dead-lettered")
        except WaitTimeout:
            self.notes.append(f"at {fault.at:g}s: the poison event was not dead-lettered in {TAKE_EFFECT_SECONDS:g}s")
        time.sleep(fault.hold)
        poison.fix()
        faults.replay_dead_letters(self.stack)

    # -- putting things back -----------------------------------------------------------------

    def recover(self) -> int:
        """Before the verdict: no failpoint left armed, the stack's processes all running, every
        poison fixed and whatever is still dead-lettered replayed. How many were replayed here."""
        for point in failpoints.NAMES:
            failpoints.disarm(self.stack.settings, point)
        for name in ("relay", "projector"):
            if not self.stack.stack.processes[name].alive():
                self.notes.append(f"{name} was down at the end and was restarted")
            self.stack.resume(name)
        for poison in self.poisons:
            poison.fix()
        return faults.replay_dead_letters(self.stack)

    def _extra(self, name: str) -> processes.Process:
        directory = self.stack.stack.directory
        return processes.start_service(name, self.stack.settings, directory / f"extra-{name}.log")
