"""Settings for the whole test session, notebooks included (their kernels inherit the environment)."""

import os

from cqrs_demo.course.definition import REHEARSAL_VARIABLE


def pytest_configure(config):
    # Every exercise check that passes in a notebook run also proves that the exercise's
    # declared wrong answer fails against the same observation (see cqrs_demo.course.definition).
    os.environ.setdefault(REHEARSAL_VARIABLE, "1")
