"""Class namespaces: one per student and notebook, derived from their names, safe on every server.

A notebook's stack lives in a namespace (the PostgreSQL schema, the RabbitMQ exchanges and
queues, the Mongo database and the run folder are all named after it). In a class, that name is

    cls_<slug>_<hash>_<notebook>        "Ana B", nb01 -> cls_anab_f0633d59_nb01

- `cls_` marks a class namespace. `cqrs-demo class reset` touches nothing without it, so the
  default stack (`cqrs`), the tests' `t_...` and the benchmarks' `bench_...` are out of its reach.
- `<slug>`: the student's name reduced to at most 12 ASCII letters and digits, so an instructor
  can tell whose it is ("María José" -> `mariajose`; a name with no Latin letter -> `user`).
- `<hash>`: 8 hex digits of SHA-256 of the exact name, so names with the same slug ("Ana B",
  "ana.b") get different namespaces.
- `<notebook>`: the label the notebook gives its stack (`nb01`, `nb06_naive`), at most 14 characters.

At most 40 characters in all (`config.NAMESPACE_PATTERN`), which keeps every name derived from it
within its server's limit: the schema and NOTIFY channel (`<ns>_outbox`) under PostgreSQL's
63 bytes, and the sessions' application names (`cqrs-relay:<ns>`), which PostgreSQL would
silently cut at 63; the Mongo database (`<ns>_read`) under 64 bytes with none of `/\\. "$*<>:|?`;
the exchanges and queues (`<ns>.projector.dead`) far under RabbitMQ's 255.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

PREFIX = "cls_"
SLUG_MAX = 12
HASH_CHARS = 8
NOTEBOOK_MAX = 14
NO_LATIN_SLUG = "user"

NOTEBOOK_PATTERN = re.compile(rf"^[a-z0-9][a-z0-9_]{{0,{NOTEBOOK_MAX - 1}}}$")
_NAMESPACE = re.compile(
    rf"^{PREFIX}(?P<slug>[a-z0-9]{{1,{SLUG_MAX}}})_(?P<hash>[0-9a-f]{{{HASH_CHARS}}})"
    rf"_(?P<notebook>[a-z0-9][a-z0-9_]{{0,{NOTEBOOK_MAX - 1}}})$"
)


def slug(student: str) -> str:
    """The readable part: accents dropped, only ASCII letters and digits kept, lower case."""
    ascii_only = unicodedata.normalize("NFKD", student).encode("ascii", "ignore").decode()
    kept = re.sub(r"[^a-z0-9]", "", ascii_only.lower())
    return kept[:SLUG_MAX] or NO_LATIN_SLUG


def student_hash(student: str) -> str:
    """The distinguishing part: the exact name, byte for byte (an environment may hold any string)."""
    return hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


def student_prefix(student: str) -> str:
    """What every namespace of this student starts with, and nobody else's does."""
    return f"{PREFIX}{slug(student)}_{student_hash(student)}_"


def check_notebook(notebook: str) -> str:
    if not NOTEBOOK_PATTERN.fullmatch(notebook):
        raise ValueError(
            f"a notebook's stack label is 1 to {NOTEBOOK_MAX} lower-case letters, digits or '_' "
            f"(like 'nb01' or 'nb06_naive'); got {notebook!r}"
        )
    return notebook


def namespace_for(student: str, notebook: str) -> str:
    """The namespace of `student`'s stack for `notebook`: `LabStack(notebook)` runs in it."""
    if not student:
        raise ValueError("a class namespace needs a student name")
    return student_prefix(student) + check_notebook(notebook)


@dataclass(frozen=True)
class ClassNamespace:
    """A class namespace taken apart. The exact student name is not in it: the registry has it."""

    namespace: str
    slug: str
    hash: str
    notebook: str

    @property
    def student_key(self) -> str:
        """Who it belongs to, when the registry does not say: `slug#hash`."""
        return f"{self.slug}#{self.hash}"

    def belongs_to(self, student: str) -> bool:
        return self.namespace.startswith(student_prefix(student))


def parse(name: str) -> ClassNamespace | None:
    """The parts of a class namespace; None for any other name (a test's, the default stack's)."""
    found = _NAMESPACE.fullmatch(name)
    if not found:
        return None
    return ClassNamespace(name, found["slug"], found["hash"], found["notebook"])


def is_class_namespace(name: str) -> bool:
    return parse(name) is not None
