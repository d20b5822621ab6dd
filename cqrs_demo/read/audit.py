"""The projection audit: one record per application of an event, for the anomaly counters.

With `projection_audit` on, the projector writes to `applications` every time it applies (or
skips) an event. That log would grow with every event for ever, so it is bounded by age: a TTL
index on `at` lets MongoDB delete a record `audit_retention_hours` after it was written.

Why a TTL index and not a capped collection: the counters compare the audit with every event
committed in the same period, so what the audit keeps must be decided by time, not by size. A
capped collection would silently drop the oldest records under a heavy load and show events as
lost that were not; a TTL index keeps everything younger than the retention, whatever the load
(`anomalies.measure` counts only events committed within it). MongoDB's TTL monitor runs about
once a minute, so a record lives up to a minute past its term.
"""

from __future__ import annotations

import pymongo.errors

APPLICATIONS = "applications"
TTL_INDEX = "applications_expire"
INDEX_OPTIONS_CONFLICT = (85, 86)  # IndexOptionsConflict, IndexKeySpecsConflict


def retention_seconds(hours: float) -> int:
    return max(1, round(hours * 3600))


def ensure_retention(db, hours: float) -> None:
    """Create the TTL index, or change its term if it exists with another (a setting changed)."""
    seconds = retention_seconds(hours)
    try:
        db[APPLICATIONS].create_index("at", name=TTL_INDEX, expireAfterSeconds=seconds)
    except pymongo.errors.OperationFailure as exc:
        if exc.code not in INDEX_OPTIONS_CONFLICT:
            raise
        db.command("collMod", APPLICATIONS, index={"keyPattern": {"at": 1}, "expireAfterSeconds": seconds})
