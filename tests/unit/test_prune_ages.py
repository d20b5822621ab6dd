"""How `cqrs-demo outbox prune --older-than` reads a duration, and how a prune reports itself."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cqrs_demo.write.retention import PruneReport, parse_age


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90), ("15m", 900), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("30", 30),
    ("1.5h", 5400), (" 7D ", 604800), ("0", 0),
])
def test_durations(text, seconds):
    assert parse_age(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "a week", "7 days", "-1d", "1y", "d7", "1h30m"])
def test_what_is_not_a_duration_is_refused_with_the_accepted_forms(text):
    with pytest.raises(ValueError, match="write it like 90s, 15m, 12h, 7d or 2w"):
        parse_age(text)


def test_a_report_spans_every_chunk_it_moved():
    report = PruneReport(60.0, datetime(2030, 1, 1, tzinfo=timezone.utc), dry_run=False)
    for chunk in ([4, 5, 7], [9], []):
        report.add(chunk)
    assert (report.moved, report.first_position, report.last_position) == (4, 4, 9)
    assert report.as_dict()["cutoff"] == "2030-01-01T00:00:00+00:00"
