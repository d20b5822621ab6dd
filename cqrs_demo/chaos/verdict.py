"""The verdict of a chaos run: a table of what was done and what came of it, and pass or fail.

A run passes only when nothing was lost, nothing applied twice, nothing applied out of order,
and the read model, once quiet, equals the write model. It also needs every kind of fault to
have taken effect at least once: a run in which a fault never happened proves nothing about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cqrs_demo.chaos import schedule
from cqrs_demo.chaos.evidence import Evidence


@dataclass
class Verdict:
    seed: int
    seconds: float
    faults: dict[str, int]  # kind -> how many took effect
    commands: int
    accepted: int
    evidence: Evidence
    time_to_quiet: float
    replayed_at_end: int = 0
    duplicates_sent: int = 0  # messages the redeliveries published
    answers: dict[str, int] = field(default_factory=dict)  # "command status" -> how many
    refusals: dict[str, object] = field(default_factory=dict)  # "command status" -> the first refusal's body
    notes: list[str] = field(default_factory=list)

    @property
    def missing_kinds(self) -> list[str]:
        return [kind for kind in schedule.KINDS if not self.faults.get(kind)]

    @property
    def failures(self) -> list[str]:
        """Why the run failed, one reason a line; empty when it passed."""
        evidence = self.evidence
        reasons = []
        if evidence.lost:
            reasons.append(f"{evidence.lost} event(s) lost")
        if evidence.applied_twice:
            reasons.append(f"{evidence.applied_twice} application(s) of an event already applied")
        if evidence.out_of_order:
            reasons.append(f"{evidence.out_of_order} event(s) applied out of order")
        if not evidence.read_model_equal:
            reasons.append(f"the read model differs from the write model in {evidence.differences} record(s)")
        if self.missing_kinds:
            reasons.append(f"never took effect: {', '.join(self.missing_kinds)}")
        return reasons

    @property
    def passed(self) -> bool:
        return not self.failures

    def rows(self) -> list[tuple[str, object]]:
        """(what, how many) in the table's order: faults by kind, then the outcome."""
        rows: list[tuple[str, object]] = [(f"fault: {kind}", self.faults.get(kind, 0)) for kind in schedule.KINDS]
        evidence = self.evidence
        rows += [
            ("duplicate messages sent", self.duplicates_sent),
            ("commands sent", self.commands),
            ("commands accepted", self.accepted),
            ("events committed", evidence.committed),
            ("events lost", evidence.lost),
            ("events applied twice", evidence.applied_twice),
            ("events applied out of order", evidence.out_of_order),
            ("read model equal", "yes" if evidence.read_model_equal else "no"),
            ("seconds to quiet", round(self.time_to_quiet, 1)),
        ]
        return rows

    def table(self) -> str:
        rows = self.rows()
        width = max(len(what) for what, _ in rows)
        lines = [f"chaos run: {self.seconds:g}s, seed {self.seed}"]
        lines += [f"  {what.ljust(width)}  {value}" for what, value in rows]
        lines.append("PASSED: nothing lost, doubled or reordered" if self.passed
                     else "FAILED: " + "; ".join(self.failures))
        lines += [f"  {example}" for example in self.evidence.examples[:10]]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_json(self) -> dict:
        evidence = self.evidence
        return {
            "seed": self.seed, "seconds": self.seconds, "passed": self.passed, "failures": self.failures,
            "faults": {kind: self.faults.get(kind, 0) for kind in schedule.KINDS},
            "commands": self.commands, "accepted": self.accepted, "events_committed": evidence.committed,
            "lost": evidence.lost, "applied_twice": evidence.applied_twice, "out_of_order": evidence.out_of_order,
            "read_model_equal": evidence.read_model_equal, "differences": evidence.differences,
            "time_to_quiet_seconds": round(self.time_to_quiet, 2), "replayed_at_end": self.replayed_at_end,
            "duplicates_sent": self.duplicates_sent,
            "answers": self.answers, "refusals": self.refusals,
            "examples": evidence.examples, "notes": self.notes,
        }
