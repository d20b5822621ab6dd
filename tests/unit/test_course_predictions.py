"""The checks of *predict* exercises, against observations made up here: no I/O."""

from __future__ import annotations

import enum

import pytest

from cqrs_demo.course.predictions import anomaly_appears, choices, number_within, one_of, same_order

DELIVERIES = {"the same event again": "duplicate", "an older one": "duplicate", "two ahead": "gap"}
check_outcomes = choices("applied", "duplicate", "gap")


class Outcome(enum.Enum):
    DUPLICATE = "duplicate"
    GAP = "gap"


def test_choices_pass_as_a_list_in_order_or_as_a_mapping():
    assert check_outcomes(["duplicate", "duplicate", "gap"], DELIVERIES).passed
    assert check_outcomes(dict(reversed(DELIVERIES.items())), DELIVERIES).passed
    assert check_outcomes([" Duplicate", "DUPLICATE", Outcome.GAP], DELIVERIES).passed


def test_choices_name_the_item_predicted_wrongly():
    verdict = check_outcomes(["applied", "duplicate", "gap"], DELIVERIES)
    assert not verdict.passed
    assert [row.item for row in verdict.rows if not row.ok] == ["the same event again"]
    assert verdict.answer == "'applied', 'duplicate', 'gap'"
    assert verdict.observed == "'duplicate', 'duplicate', 'gap'"


@pytest.mark.parametrize("prediction, says", [
    (["duplicate", "gap"], "Give one choice per item"),
    (["duplicate", "duplicate", "skipped"], "Each choice must be one of"),
    ({"the same event again": "duplicate"}, "Use exactly the items"),
    ("duplicate", "Give a list of 3 choices"),
])
def test_choices_reject_a_malformed_prediction_with_a_hint(prediction, says):
    verdict = check_outcomes(prediction, DELIVERIES)
    assert not verdict.passed and says in verdict.hint


def test_one_of():
    check = one_of("lost", "doubled", "none")
    assert check("lost", "lost").passed
    assert not check("doubled", "lost").passed
    assert "one of" in check("maybe", "lost").hint


def test_number_within_an_absolute_tolerance():
    check = number_within(absolute=2, unit="events")
    assert check(10, 12).passed and check(14, 12).passed
    assert not check(15, 12).passed
    assert "±2 events" in check(15, 12).observed
    assert not check("12", 12).passed and "number" in check("12", 12).hint
    assert not check(True, 1).passed  # a boolean is not a count


def test_number_within_a_relative_tolerance():
    check = number_within(relative=0.25, unit="ms")
    assert check(80, 100).passed and check(125, 100).passed
    assert not check(70, 100).passed


def test_number_within_needs_exactly_one_tolerance():
    with pytest.raises(ValueError):
        number_within()
    with pytest.raises(ValueError):
        number_within(absolute=1, relative=0.1)


def test_same_order_points_at_the_first_difference():
    check = same_order()
    assert check(["committed", "published", "applied"], ("committed", "published", "applied")).passed
    verdict = check(["committed", "applied", "published"], ["committed", "published", "applied"])
    assert not verdict.passed and [row.item for row in verdict.rows if not row.ok] == ["#2", "#3"]
    shorter = check(["committed"], ["committed", "published"])
    assert not shorter.passed and shorter.rows[1].answer == "(missing)"


def test_anomaly_appears_while_broken_and_none_once_fixed():
    check = anomaly_appears("events lost", "events applied twice")
    clean = {"events lost": 0, "events applied twice": 0}
    doubled = {"events lost": 0, "events applied twice": 3}
    assert check("events applied twice", doubled, clean).passed
    wrong = check("events lost", doubled, clean)
    assert not wrong.passed and wrong.rows[0].observed == "events applied twice: 3"
    assert not check("none", doubled, clean).passed
    assert check("none", clean, clean).passed
    not_fixed = check("events applied twice", doubled, doubled)
    assert not not_fixed.passed and "not fully back on" in not_fixed.hint
    assert "one of" in check("duplicates", doubled, clean).hint
