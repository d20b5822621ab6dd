"""The version check (`read/versioned.py`): each event applied once, in order, or not at all."""

from __future__ import annotations

import pytest

from cqrs_demo.read.versioned import Outcome, apply_unchecked, apply_versioned
from mongo_double import FakeDatabase


@pytest.fixture
def docs():
    return FakeDatabase()["products"]


def stored(docs, doc_id=1) -> dict | None:
    return docs.find_one({"_id": doc_id})


def at_version(docs, version: int, doc_id=1) -> None:
    """A document that has applied versions 1..version, each adding one unit."""
    assert apply_versioned(docs, doc_id, 1, {"name": "v1"}, {"units": 1}) is Outcome.APPLIED
    for v in range(2, version + 1):
        assert apply_versioned(docs, doc_id, v, {"name": f"v{v}"}, {"units": 1}) is Outcome.APPLIED


# --- apply_versioned -----------------------------------------------------------------------------


def test_version_1_creates_the_document_with_its_fields_and_increments(docs):
    assert apply_versioned(docs, 1, 1, {"name": "A", "price_cents": 12000}, {"units": 0}) is Outcome.APPLIED
    assert stored(docs) == {"_id": 1, "name": "A", "price_cents": 12000, "units": 0, "version": 1}


def test_version_1_again_is_a_duplicate_and_changes_nothing(docs):
    apply_versioned(docs, 1, 1, {"name": "A"})
    assert apply_versioned(docs, 1, 1, {"name": "B"}) is Outcome.DUPLICATE
    assert stored(docs) == {"_id": 1, "name": "A", "version": 1}


def test_the_next_version_applies_over_its_predecessor(docs):
    at_version(docs, 1)
    assert apply_versioned(docs, 1, 2, {"name": "v2"}, {"units": 5}) is Outcome.APPLIED
    assert stored(docs) == {"_id": 1, "name": "v2", "units": 6, "version": 2}


def test_a_redelivered_event_is_a_duplicate_and_its_increment_is_not_counted_twice(docs):
    at_version(docs, 2)
    assert apply_versioned(docs, 1, 2, {"name": "v2"}, {"units": 1}) is Outcome.DUPLICATE
    assert stored(docs) == {"_id": 1, "name": "v2", "units": 2, "version": 2}


def test_an_older_event_is_a_duplicate_and_never_overwrites_a_newer_state(docs):
    at_version(docs, 4)
    for old in (1, 2, 3):
        assert apply_versioned(docs, 1, old, {"name": "stale"}, {"units": 100}) is Outcome.DUPLICATE
    assert stored(docs) == {"_id": 1, "name": "v4", "units": 4, "version": 4}


def test_an_event_ahead_of_its_predecessor_is_a_gap_and_is_not_applied(docs):
    at_version(docs, 1)
    assert apply_versioned(docs, 1, 3, {"name": "v3"}, {"units": 1}) is Outcome.GAP
    assert stored(docs) == {"_id": 1, "name": "v1", "units": 1, "version": 1}
    # Once the missing event arrives, the retried one applies: nothing was skipped.
    assert apply_versioned(docs, 1, 2, {"name": "v2"}, {"units": 1}) is Outcome.APPLIED
    assert apply_versioned(docs, 1, 3, {"name": "v3"}, {"units": 1}) is Outcome.APPLIED
    assert stored(docs) == {"_id": 1, "name": "v3", "units": 3, "version": 3}


def test_a_later_version_of_a_document_that_does_not_exist_yet_is_a_gap(docs):
    assert apply_versioned(docs, 1, 2, {"name": "v2"}) is Outcome.GAP
    assert stored(docs) is None


def test_documents_are_versioned_independently(docs):
    at_version(docs, 3, doc_id=1)
    assert apply_versioned(docs, 2, 1, {"name": "other"}) is Outcome.APPLIED
    assert apply_versioned(docs, 2, 2, {"name": "other v2"}) is Outcome.APPLIED
    assert stored(docs, 1)["version"] == 3 and stored(docs, 2)["version"] == 2


# --- apply_unchecked: what the version check prevents --------------------------------------------


def test_unchecked_first_application_creates_the_document(docs):
    assert apply_unchecked(docs, 1, 1, {"name": "A"}, {"units": 2}) is Outcome.APPLIED
    assert stored(docs) == {"_id": 1, "name": "A", "units": 2, "version": 1}


def test_unchecked_next_version_is_applied(docs):
    apply_unchecked(docs, 1, 1, {"name": "A"}, {"units": 2})
    assert apply_unchecked(docs, 1, 2, {"name": "B"}, {"units": 3}) is Outcome.APPLIED
    assert stored(docs) == {"_id": 1, "name": "B", "units": 5, "version": 2}


def test_unchecked_redelivery_is_reapplied_and_counts_the_sale_twice(docs):
    apply_unchecked(docs, 1, 1, {"name": "A"}, {"units": 2})
    assert apply_unchecked(docs, 1, 1, {"name": "A"}, {"units": 2}) is Outcome.REAPPLIED
    assert stored(docs)["units"] == 4


def test_unchecked_old_event_overwrites_the_newer_state(docs):
    apply_unchecked(docs, 1, 1, {"name": "v1"})
    apply_unchecked(docs, 1, 2, {"name": "v2"})
    assert apply_unchecked(docs, 1, 1, {"name": "v1"}) is Outcome.OVERWROTE_NEWER
    assert stored(docs) == {"_id": 1, "name": "v1", "version": 1}


# --- Outcome.combine -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcomes, combined",
    [
        ([Outcome.APPLIED, Outcome.APPLIED], Outcome.APPLIED),
        ([Outcome.DUPLICATE, Outcome.DUPLICATE], Outcome.DUPLICATE),
        ([Outcome.DUPLICATE, Outcome.APPLIED], Outcome.APPLIED),
        ([Outcome.APPLIED, Outcome.GAP], Outcome.GAP),
        ([Outcome.REAPPLIED, Outcome.APPLIED], Outcome.REAPPLIED),
        ([Outcome.REAPPLIED, Outcome.OVERWROTE_NEWER], Outcome.OVERWROTE_NEWER),
        ([Outcome.OVERWROTE_NEWER, Outcome.GAP], Outcome.GAP),
        ([], Outcome.DUPLICATE),
    ],
)
def test_an_event_touching_several_documents_reports_its_most_telling_outcome(outcomes, combined):
    assert Outcome.combine(outcomes) is combined
