"""Counting what went wrong, measured against PostgreSQL, the record of what really happened.

The event log (`write.event_log`) holds every event the write side committed. The projector's
application log (a stack started with `projection_audit=True`) holds every time it applied one,
for `audit_retention_hours`; only events committed within that period are counted. Comparing them:
- lost: committed events never applied (a duplicate counts as applied: see REACHED);
- applied twice: applications beyond the first of the same event;
- out of order: applications over a newer version of the same document;
- stale at the end: products whose read model is behind PostgreSQL once everything settled.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from cqrs_demo.polling import WaitTimeout, wait_until
from cqrs_demo.read.audit import APPLICATIONS
from cqrs_demo.read.versioned import Outcome
from cqrs_demo.write.event_log import committed_events
from cqrs_demo.write.schema import products

APPLYING = {Outcome.APPLIED.value, Outcome.REAPPLIED.value, Outcome.OVERWROTE_NEWER.value}
# With the version check on, a document only ever moves from version v-1 to v, so an event
# found to be a duplicate was applied: by this delivery before a crash cut its log entry, or
# by an earlier one. (Without the check there are no duplicates, only re-applications.)
REACHED = APPLYING | {Outcome.DUPLICATE.value}


def _settled_applications(stack, quiet: float = 0.3, timeout: float = 10.0) -> list[dict]:
    """The application log once it has stopped growing: the projector logs a batch after applying it."""
    counts: list[int] = []

    def stopped_growing() -> bool:
        counts.append(stack.read_db[APPLICATIONS].count_documents({}))
        return len(counts) > 1 and counts[-1] == counts[-2]

    try:
        wait_until(stopped_growing, timeout, interval=quiet, what="the application log to stop growing")
    except WaitTimeout:
        pass  # still growing: count what is there, as an observer at that moment would
    return list(stack.read_db[APPLICATIONS].find({}, {"event_id": 1, "outcome": 1}))


def measure(stack) -> dict[str, int]:
    applications = _settled_applications(stack)
    events = committed_events()
    # The audit forgets applications after its retention: an event committed before that cannot
    # be found in it, and would be counted as lost.
    audited_since = sa.func.now() - sa.literal(timedelta(hours=stack.settings.audit_retention_hours), sa.Interval())
    with stack.engine.connect() as conn:
        committed = {row.event_id for row in
                     conn.execute(sa.select(events.c.event_id).where(events.c.committed_at >= audited_since))}
        versions = dict(conn.execute(sa.select(products.c.id, products.c.version)).all())
    applied = Counter(a["event_id"] for a in applications if a["outcome"] in APPLYING)
    reached = {a["event_id"] for a in applications if a["outcome"] in REACHED}
    read_versions = {d["_id"]: d["version"] for d in stack.read_db["products"].find({}, {"version": 1})}
    measured = {
        "events committed": len(committed),
        "events lost": sum(1 for event_id in committed if event_id not in reached),
        "events applied twice": sum(count - 1 for count in applied.values() if count > 1),
        "events applied out of order": sum(1 for a in applications if a["outcome"] == Outcome.OVERWROTE_NEWER.value),
        "products stale at the end": sum(1 for pid, v in versions.items() if read_versions.get(pid, 0) < v),
    }
    stack.seat.measured(measured)  # the instructor's view shows each student's last measurement
    return measured


def committed_between(stack, start: float, end: float) -> int:
    """Events committed in a window of epoch seconds: what a lost-while-down design loses."""
    events = committed_events()
    with stack.engine.connect() as conn:
        return conn.scalar(
            sa.select(sa.func.count()).where(
                events.c.committed_at >= sa.func.to_timestamp(start), events.c.committed_at <= sa.func.to_timestamp(end)
            )
        )


def compare(predicted: dict, observed: dict[str, int]) -> pd.DataFrame:
    """Predicted next to observed. A prediction is a count (exactly this) or (count, ">=") (at least)."""
    rows = []
    for name, seen in observed.items():
        expected, rule = predicted[name] if isinstance(predicted[name], tuple) else (predicted[name], "=")
        holds = seen >= expected if rule == ">=" else seen == expected
        rows.append({"anomaly": name, "predicted": f"{rule} {expected}" if rule != "=" else expected,
                     "observed": seen, "as predicted": holds})
    return pd.DataFrame(rows).set_index("anomaly")
