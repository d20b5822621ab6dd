"""What happened to every event of a chaos run, from the records, once the stack is quiet.

PostgreSQL's event log (`write.event_log`) is the record of what was committed; the projector's
application log (`read.audit`, the stack runs with `projection_audit`) the record of every time
an event was applied or recognised as a duplicate, by any projector. Compared event by event:
- lost: committed and never reached (with the version check on, an event found to be a duplicate
  was applied, by this delivery before a crash cut its log entry or by an earlier one), or
  accepted by the command service and not in the event log at all;
- applied twice: applications beyond the first of the same event;
- out of order: applications over a newer version of the same document (only possible with the
  version check off: with it on, the projector applies version v only over v − 1);
and the read model compared with the write model, record by record (`consistency.compare`).
`tally` is the comparison alone, on plain rows, so it can be tested without a stack.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa

from cqrs_demo import consistency
from cqrs_demo.lab.anomalies import APPLYING, REACHED  # what counts as applied, and as reached
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.write.event_log import committed_events

EXAMPLES = 5  # offending events kept of each kind, for the message


@dataclass
class Evidence:
    committed: int
    lost: int
    applied_twice: int
    out_of_order: int
    read_model_equal: bool | None = None
    differences: int = 0
    examples: list[dict] = field(default_factory=list)  # the first offending events, each with its anomaly


def tally(committed: list[dict], applications: list[dict], accepted_positions=()) -> Evidence:
    """`committed`: rows with event_id, position, type, aggregate_type, aggregate_id, aggregate_version;
    `applications`: the audit's records (event_id, outcome); `accepted_positions`: the positions
    the command service answered with."""
    reached = {a["event_id"] for a in applications if a["outcome"] in REACHED}
    applied = Counter(a["event_id"] for a in applications if a["outcome"] in APPLYING)
    by_id = {row["event_id"]: row for row in committed}
    positions = {row["position"] for row in committed}
    lost = [row for row in committed if row["event_id"] not in reached]
    never_committed = sorted(set(accepted_positions) - positions)
    twice = [(event_id, count) for event_id, count in applied.items() if count > 1]
    reordered = [a for a in applications if a["outcome"] == Outcome.OVERWROTE_NEWER.value]
    examples = (
        [{"anomaly": "lost", **_described(row)} for row in lost[:EXAMPLES]]
        + [{"anomaly": "accepted, not in the event log", "position": p} for p in never_committed[:EXAMPLES]]
        + [{"anomaly": f"applied {count} times", **_described(by_id.get(event_id, {"event_id": event_id}))}
           for event_id, count in twice[:EXAMPLES]]
        + [{"anomaly": "applied over a newer version", **_described(by_id.get(a["event_id"], a))}
           for a in reordered[:EXAMPLES]]
    )
    return Evidence(
        committed=len(committed),
        lost=len(lost) + len(never_committed),
        applied_twice=sum(count - 1 for _, count in twice),
        out_of_order=len(reordered),
        examples=examples,
    )


def _described(row: dict) -> dict:
    keys = ("event_id", "position", "type", "aggregate_type", "aggregate_id", "aggregate_version")
    return {key: row[key] for key in keys if key in row}


def gather(stack, accepted_positions=()) -> Evidence:
    """The evidence of a quiet stack: its event log, its application log, its two models."""
    events = committed_events()
    columns = [events.c[name] for name in ("event_id", "position", "type", "aggregate_type", "aggregate_id",
                                           "aggregate_version")]
    with stack.engine.connect() as conn:
        committed = [dict(row._mapping) for row in conn.execute(sa.select(*columns).order_by(events.c.position))]
    applications = list(stack.read_db[APPLICATIONS].find({}, {"_id": 0, "event_id": 1, "outcome": 1}))
    evidence = tally(committed, applications, accepted_positions)
    comparison = consistency.compare(stack.engine, stack.read_db)
    evidence.read_model_equal = comparison["equal"]
    evidence.differences = comparison["difference_count"]
    evidence.examples += [{"anomaly": f"read model {d['kind']}", **{k: v for k, v in d.items() if k != "kind"}}
                          for d in comparison["differences"][:EXAMPLES]]
    return evidence
