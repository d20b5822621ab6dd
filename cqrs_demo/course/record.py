"""The progress record: every check a student ran, in PostgreSQL, outside any stack's namespace.

One row per student and exercise, in the table `course.progress` of the database named by
`CQRS_DATABASE_URL` (the schema and table are created when first needed). Notebooks drop and
recreate their stack's schema on every start; this schema is never part of a stack, so progress
survives every reset. Columns, for whoever reads the record (the classroom view does):

    student            who ran the check: `Settings.student` (CQRS_STUDENT, else JUPYTERHUB_USER, else the login)
    exercise           the exercise id, "03.1"
    notebook           the notebook's file name without `.ipynb`
    attempts           how many times the check ran, passed or not
    hints_shown        how many hints the student asked for
    first_attempt_at   when the check first ran
    last_attempt_at    when it last ran
    last_passed        whether the last run passed
    passed_at          when it first passed (NULL: not yet)
    attempts_to_pass   the attempt that first passed (1: right the first time)

`class_progress(engine)` reads the whole record; `ProgressRecord.student_rows(student)` one
student's part of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from cqrs_demo import config
from cqrs_demo.connections import ensure_database, write_engine

if TYPE_CHECKING:
    from cqrs_demo.course.definition import Exercise

SCHEMA = "course"
COLUMNS = (
    "student", "exercise", "notebook", "attempts", "hints_shown", "first_attempt_at", "last_attempt_at",
    "last_passed", "passed_at", "attempts_to_pass",
)


def progress_table(schema: str = SCHEMA) -> sa.Table:
    return sa.Table(
        "progress",
        sa.MetaData(schema=schema),
        sa.Column("student", sa.Text, primary_key=True),
        sa.Column("exercise", sa.Text, primary_key=True),
        sa.Column("notebook", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("hints_shown", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_passed", sa.Boolean),
        sa.Column("passed_at", sa.DateTime(timezone=True)),
        sa.Column("attempts_to_pass", sa.Integer),
    )


class ProgressRecord:
    """Reads and writes the record through `engine`; `schema` is "course" except in tests."""

    def __init__(self, engine: Engine, schema: str = SCHEMA) -> None:
        self.engine = engine
        self.schema = schema
        self.table = progress_table(schema)
        self._created = False

    def ensure(self) -> None:
        """Create the schema and table if missing. Safe when many kernels start at once."""
        if self._created:
            return
        with self.engine.begin() as conn:
            # CREATE ... IF NOT EXISTS still fails when two sessions create the same object at
            # the same moment; a transaction-scoped lock on the schema's name serialises them.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"course schema {self.schema}"))))
            conn.execute(sa.schema.CreateSchema(self.schema, if_not_exists=True))
            self.table.create(conn, checkfirst=True)
        self._created = True

    def record_attempt(self, student: str, exercise: str, notebook: str, passed: bool) -> None:
        self.ensure()
        now = sa.func.now()
        row = {
            "student": student, "exercise": exercise, "notebook": notebook, "attempts": 1,
            "first_attempt_at": now, "last_attempt_at": now, "last_passed": passed,
            "passed_at": now if passed else None, "attempts_to_pass": 1 if passed else None,
        }
        statement = insert(self.table).values(row)
        current = self.table.c
        first_pass = sa.and_(current.passed_at.is_(None), statement.excluded.last_passed)
        statement = statement.on_conflict_do_update(
            index_elements=[current.student, current.exercise],
            set_={
                "notebook": statement.excluded.notebook,
                "attempts": current.attempts + 1,
                "first_attempt_at": sa.func.coalesce(current.first_attempt_at, now),  # a hint may come first
                "last_attempt_at": now,
                "last_passed": statement.excluded.last_passed,
                "passed_at": sa.case((first_pass, now), else_=current.passed_at),
                "attempts_to_pass": sa.case((first_pass, current.attempts + 1), else_=current.attempts_to_pass),
            },
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def record_hint(self, student: str, exercise: str, notebook: str) -> None:
        self.ensure()
        statement = insert(self.table).values(student=student, exercise=exercise, notebook=notebook, hints_shown=1)
        statement = statement.on_conflict_do_update(
            index_elements=[self.table.c.student, self.table.c.exercise],
            set_={"hints_shown": self.table.c.hints_shown + 1},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def rows(self, student: str | None = None) -> pd.DataFrame:
        """The record as a table, one row per student and exercise; only `student`'s when given."""
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(self.table.name, schema=self.schema):
                return pd.DataFrame(columns=list(COLUMNS))  # nobody has run a check here yet
        query = sa.select(*[self.table.c[name] for name in COLUMNS]).order_by(
            self.table.c.student, self.table.c.exercise
        )
        if student is not None:
            query = query.where(self.table.c.student == student)
        with self.engine.connect() as conn:
            result = conn.execute(query)
            return pd.DataFrame(result.fetchall(), columns=list(COLUMNS))


def class_progress(engine: Engine, schema: str = SCHEMA) -> pd.DataFrame:
    """Every student's progress: one row per student and exercise they have tried (columns above).

    `engine` connects to the database of `CQRS_DATABASE_URL`; a database where nobody has run a
    check yet gives an empty table with the same columns.
    """
    return ProgressRecord(engine, schema).rows()


# -- the record a notebook's checks write to ------------------------------------------------


def current_student() -> str:
    """Who runs this kernel, by the settings' rule (the name their stacks are derived from too)."""
    return config.from_environment().student

_current: ProgressRecord | None = None


def current_record() -> ProgressRecord:
    """The record in the database of `CQRS_DATABASE_URL`, opened on first use."""
    global _current
    if _current is None:
        settings = config.from_environment()
        ensure_database(settings.database_url)
        _current = ProgressRecord(write_engine(settings, pool_size=1, max_overflow=1))
    return _current


@contextmanager
def use(record: ProgressRecord) -> Iterator[ProgressRecord]:
    """Checks inside the `with` block write to `record` (tests point it at a schema of their own)."""
    global _current
    previous, _current = _current, record
    try:
        yield record
    finally:
        _current = previous


def record_attempt(exercise: "Exercise", passed: bool) -> str | None:
    """Record one run of a check; a problem is returned as a sentence, never raised.

    A student's feedback matters more than their statistics: if PostgreSQL cannot take the
    row, the check still shows its verdict, and says the attempt went unrecorded.
    """
    try:
        current_record().record_attempt(current_student(), exercise.id, exercise.notebook, passed)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        return f"(this attempt was not recorded in your progress: {type(exc).__name__}: {str(exc).splitlines()[0]})"
    return None


def record_hint(exercise: "Exercise") -> None:
    try:
        current_record().record_hint(current_student(), exercise.id, exercise.notebook)
    except (sa.exc.SQLAlchemyError, OSError):
        pass  # a hint shown but not counted is no loss to the student
