"""How the checks of notebooks 01, 02 and 04 read an answer, without a stack: no I/O.

The checks that drive a stack are run on a real one in tests/e2e/test_exercise_checks.py.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from cqrs_demo.course import exercise
from cqrs_demo.course.exercises.returned import whole_numbers
from cqrs_demo.course.student_code import Ran
from cqrs_demo.lab.price_bands import BANDS, price_band


@pytest.mark.parametrize("result, numbers", [
    ([3, 1], [3, 1]),
    (pd.Series([4, 5]), [4, 5]),
    (np.array([6]), [6]),
    ((7.0,), [7]),
    ([], []),
])
def test_whole_numbers_reads_lists_series_and_arrays_in_their_order(result, numbers):
    assert whole_numbers(Ran(result=result)) == (numbers, None)


@pytest.mark.parametrize("ran, says", [
    (Ran(result=None), "is a `return` missing?"),
    (Ran(result=pd.DataFrame({"id": [1]})), "take one column as a list"),
    (Ran(result=[1, "2"]), "returned '2' in its list"),
    (Ran(result=[1.5]), "returned 1.5 in its list"),
    (Ran(result=[True]), "returned True in its list"),
    (Ran(result=3), "returned 3, not a list"),
    (Ran(result={1: 2}), "not a list"),
    (Ran(error="KeyError: 'id' at `row.id`"), "raised KeyError"),
])
def test_whole_numbers_says_what_is_wrong(ran, says):
    numbers, problem = whole_numbers(ran)
    assert numbers == [] and says in problem


def test_whole_numbers_refuses_more_than_its_limit():
    assert "more than 3" in whole_numbers(Ran(result=range(10)), limit=3)[1]


@pytest.mark.parametrize("price, band", [
    ("9.99", BANDS[0]), ("10.00", BANDS[1]), (Decimal("19.99"), BANDS[1]), (20, BANDS[2]), ("0", BANDS[0]),
])
def test_price_bands_include_their_lower_bound(price, band):
    assert price_band(price) == band


def test_01_1_needs_a_choice_per_place_in_order():
    observed = {"the products table (PostgreSQL)": "yes", "the outbox table (PostgreSQL)": "yes",
                "RabbitMQ": "no", "the read model (MongoDB)": "no", "the query service's answer": "no"}
    assert exercise("01.1").judge(["yes", "yes", "no", "no", "no"], observed=observed).passed
    verdict = exercise("01.1").judge(exercise("01.1").wrong_answer, observed=observed)
    assert not verdict.passed and [row.ok for row in verdict.rows] == [True, True, False, True, True]


@pytest.mark.parametrize("prediction, passed", [
    ([200, 412], True), (["200", " 412 "], True), ([200, 200], False), ([412, 200], False), (["ok", 412], False),
])
def test_02_1_takes_status_codes_as_numbers_or_digits(prediction, passed):
    observed = {"Alice (first)": 200, "Bob (second)": 412}
    assert exercise("02.1").judge(prediction, observed=observed).passed is passed


def test_04_1_counts_events_exactly():
    assert exercise("04.1").judge(3, observed=3).passed
    assert not exercise("04.1").judge(exercise("04.1").wrong_answer, observed=3).passed
    assert not exercise("04.1").judge(4, observed=3).passed
