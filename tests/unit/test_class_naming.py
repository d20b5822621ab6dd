"""Class namespaces: any student name gives a valid, stable name, distinct per student, within every server's limits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cqrs_demo.classroom import naming
from cqrs_demo.classroom.lease import application_name as lease_application_name
from cqrs_demo.config import NAMESPACE_PATTERN, Settings
from cqrs_demo.messaging import topology
from cqrs_demo.messaging.relay import application_name as relay_application_name

SIXTY = "Zoë Ångström-Øvergård y Núñez de la Peña, 李雷 & Łukasz Đorđev"
MONGO_FORBIDDEN = set('/\\. "$*<>:|?\0')

notebooks = st.from_regex(naming.NOTEBOOK_PATTERN, fullmatch=True)
# Any string an environment variable can hold: letters of any script, spaces, dots, controls,
# and the lone surrogates Python uses for bytes that are not UTF-8.
student_names = st.text(st.characters(codec=None, exclude_categories=()), min_size=1, max_size=80)


def _bytes(name: str) -> int:
    return len(name.encode())


def assert_fits_every_server(namespace: str) -> None:
    settings = Settings(namespace=namespace)
    for delivery in ("outbox", "naive"):
        queues, exchanges = topology.owned_names(settings.with_(delivery=delivery))
        for name in queues + exchanges:
            assert _bytes(name) <= 255, f"RabbitMQ name {name!r}"
    # PostgreSQL cuts identifiers and application names at 63 bytes: a cut name would silently
    # stop matching (the relay's health check, the instructor's view), so none may need cutting.
    for name in (settings.schema, settings.notify_channel, relay_application_name(settings),
                 lease_application_name(namespace)):
        assert _bytes(name) <= 63, f"PostgreSQL name {name!r}"
    database = settings.mongo_database
    assert _bytes(database) < 64 and not (set(database) & MONGO_FORBIDDEN), f"MongoDB database {database!r}"
    assert re.fullmatch(r"[a-z0-9_]+", settings.stack_dir.name)  # a plain folder name on any file system


def test_the_examples_of_the_docstring():
    assert naming.namespace_for("Ana B", "nb01") == "cls_anab_f0633d59_nb01"
    assert naming.namespace_for("ana.b", "nb01") != naming.namespace_for("Ana B", "nb01")
    assert naming.namespace_for("María José", "nb01").startswith("cls_mariajose_")
    assert naming.namespace_for("李雷", "nb01").startswith("cls_user_")


def test_a_sixty_character_unicode_name():
    assert len(SIXTY) == 60
    namespace = naming.namespace_for(SIXTY, "nb07_nodedup")
    assert namespace.startswith("cls_zoeangstromv_") and len(namespace) <= 40
    assert_fits_every_server(namespace)


@given(student=student_names, notebook=notebooks)
def test_any_name_gives_a_valid_stable_class_namespace(student, notebook):
    namespace = naming.namespace_for(student, notebook)
    assert re.match(NAMESPACE_PATTERN, namespace), namespace
    assert naming.namespace_for(student, notebook) == namespace  # stable: the same every time
    parsed = naming.parse(namespace)
    assert parsed is not None and parsed.notebook == notebook and parsed.belongs_to(student)
    assert_fits_every_server(namespace)


@given(first=student_names, second=student_names, notebook=notebooks)
def test_two_students_never_share_a_namespace(first, second, notebook):
    if first == second:
        return
    assert naming.namespace_for(first, notebook) != naming.namespace_for(second, notebook)
    assert not naming.parse(naming.namespace_for(second, notebook)).belongs_to(first)


@given(student=student_names, first=notebooks, second=notebooks)
def test_a_students_notebooks_share_the_student_prefix_only(student, first, second):
    a, b = naming.namespace_for(student, first), naming.namespace_for(student, second)
    assert (a == b) == (first == second)
    assert a.startswith(naming.student_prefix(student)) and b.startswith(naming.student_prefix(student))


@pytest.mark.parametrize("name", [
    "cqrs", "t_1a2b3c4d5e6f", "bench_throughput", "nb01", "cls_", "cls_x_1234567_nb01", "cls_Ana_f0633d59_nb01",
    "cls_a_b_f0633d59", "cls_abcdefghijklm_f0633d59_nb01", "cls_anab_f0633d59_nb01_and_much_longer",
])
def test_other_namespaces_are_not_class_namespaces(name):
    assert not naming.is_class_namespace(name)


@pytest.mark.parametrize("label", ["", "NB01", "nb-01", "nb 01", "_nb01", "notebook_number_01", "nb01\n"])
def test_a_malformed_notebook_label_is_refused_with_what_is_allowed(label):
    with pytest.raises(ValueError, match="lower-case letters, digits or '_'"):
        naming.namespace_for("ada", label)


def test_an_empty_student_is_refused():
    with pytest.raises(ValueError, match="student"):
        naming.namespace_for("", "nb01")
