"""Settings for the whole test session, notebooks included (their kernels inherit the environment)."""

from __future__ import annotations

import getpass
import os
import uuid
from pathlib import Path

from cqrs_demo.course.definition import REHEARSAL_VARIABLE

STUDENT_VARIABLE = "CQRS_STUDENT"
TEST_DATABASE_VARIABLE = "CQRS_TEST_DATABASE_URL"
TEST_DATABASE = "cqrs_test"
_session_student: str | None = None


def pytest_configure(config):
    # Every exercise check that passes in a notebook run also proves that the exercise's
    # declared wrong answer fails against the same observation (see cqrs_demo.course.definition).
    os.environ.setdefault(REHEARSAL_VARIABLE, "1")
    # Notebooks run as "the student" (`LabStack("nb01")` derives its namespace from the name), so
    # a test session on a shared machine runs as a student of its own: two sessions, or a session
    # and someone's JupyterLab, each running notebook 01 at once never share a namespace.
    global _session_student
    if not os.environ.get(STUDENT_VARIABLE):
        _session_student = f"test {getpass.getuser()} {uuid.uuid4().hex[:6]}"
        os.environ[STUDENT_VARIABLE] = _session_student
    # The tests' own database, beside the class's: named here, so that the clean-up at the end of
    # the session knows it too (the chaos runs register class stacks in it).
    if not os.environ.get(TEST_DATABASE_VARIABLE):
        from cqrs_demo.config import from_environment

        url = from_environment().database_url
        os.environ[TEST_DATABASE_VARIABLE] = url.rsplit("/", 1)[0] + "/" + TEST_DATABASE


def pytest_sessionfinish(session, exitstatus):
    """Remove the class stacks the session's notebooks left (every notebook leaves its data for a
    re-run), and the exercises its student passed: on a class's servers, a test session is not a
    student the instructor should see in the room."""
    tests = Path(__file__).parent / "tests"
    ran_stacks = any(tests / "unit" not in Path(item.fspath).parents for item in getattr(session, "items", []))
    if _session_student is None or not ran_stacks:
        return
    from cqrs_demo import config
    from cqrs_demo.classroom.reset import reset
    from cqrs_demo.connections import database_exists

    environment = config.from_environment()
    for settings in (environment, environment.with_(database_url=os.environ[TEST_DATABASE_VARIABLE])):
        try:
            if not database_exists(settings.database_url):
                continue  # no stack of the session ran against it
            report = reset(settings, _session_student, progress=True)
        except Exception as exc:  # the servers may be what failed the session; say so, do not mask it
            print(f"\nclass stacks of {_session_student!r} not removed: {exc!r}")
            continue
        if report.skipped:
            print(f"\nclass stacks of {_session_student!r} still running, not removed: {report.skipped}")
