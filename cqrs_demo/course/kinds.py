"""The three kinds of exercise, and how feedback names the two sides of each."""

from __future__ import annotations

import enum


class Kind(str, enum.Enum):
    PREDICT = "predict"  # a prediction written down before an experiment runs
    MODIFY = "modify"  # code the student writes, exercised on the running stack
    BREAK_AND_FIX = "break-and-fix"  # a guarantee turned off, its anomaly predicted, then restored

    @property
    def answer_label(self) -> str:
        return "Your code" if self is Kind.MODIFY else "You predicted"

    @property
    def observed_label(self) -> str:
        return "On the live stack, expected" if self is Kind.MODIFY else "The live system did"
