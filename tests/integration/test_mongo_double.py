"""The unit tests' MongoDB double (tests/mongo_double.py) answers as a real server does.

Each scenario is a short script of the calls the apply rules make; it runs once against the
double and once against the MongoDB-wire server of the test session (the stand-in, or the
server of CQRS_TEST_MONGO_URL), and both transcripts (every call's result or error, then every
document left) must be equal. A rule the unit tests rely on is only as good as this agreement.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from pymongo import InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError
from pymongo.results import BulkWriteResult, DeleteResult, InsertOneResult, UpdateResult

from mongo_double import FakeDatabase

Scenario = Callable[[Any], list]


def observe(call: Callable[[], Any]) -> Any:
    """A call's outcome in plain data, comparable between the double and the server."""
    try:
        result = call()
    except BulkWriteError as exc:
        details = exc.details
        return ("BulkWriteError", {key: details[key] for key in ("nInserted", "nMatched", "nModified", "nUpserted")},
                [(error["index"], error["code"]) for error in details["writeErrors"]])
    except PyMongoError as exc:
        return (type(exc).__name__, getattr(exc, "code", None))
    if isinstance(result, InsertOneResult):
        return ("inserted", result.inserted_id)
    if isinstance(result, UpdateResult):
        return ("updated", result.matched_count, result.modified_count, result.upserted_id)
    if isinstance(result, DeleteResult):
        return ("deleted", result.deleted_count)
    if isinstance(result, BulkWriteResult):
        return ("bulk", result.inserted_count, result.matched_count, result.modified_count, result.upserted_count)
    if result is not None and not isinstance(result, dict):
        return list(result)  # a cursor
    return result


def versioned_updates(db) -> list:
    c = db["docs"]
    return [
        observe(lambda: c.insert_one({"_id": 1, "name": "a", "version": 1})),
        observe(lambda: c.insert_one({"_id": 1, "name": "b", "version": 1})),
        observe(lambda: c.update_one({"_id": 1, "version": 1}, {"$set": {"name": "c", "version": 2}})),
        observe(lambda: c.update_one({"_id": 1, "version": 1}, {"$set": {"name": "d", "version": 2}})),
        observe(lambda: c.update_one({"_id": 1, "version": 2}, {"$set": {"name": "c", "version": 2}})),
        observe(lambda: c.update_one({"_id": 2, "version": 4}, {"$set": {"version": 5}})),
        observe(lambda: c.find_one({"_id": 1}, {"version": 1})),
        observe(lambda: c.find_one({"_id": 2}, {"version": 1})),
    ]


def increments_and_maximum(db) -> list:
    c = db["status"]
    return [
        observe(lambda: c.update_one({"_id": "p"}, {"$inc": {"applied": 2}, "$max": {"last": 5}}, upsert=True)),
        observe(lambda: c.update_one({"_id": "p"}, {"$inc": {"applied": 1, "gaps": 1}, "$max": {"last": 3}})),
        observe(lambda: c.update_one({"_id": "p"}, {"$max": {"last": 9}, "$set": {"at": "x"}})),
        observe(lambda: c.update_one({"_id": "p"}, {"$max": {"last": 9}})),
    ]


def set_on_insert_upserts(db) -> list:
    c = db["poisoned"]
    return [
        observe(lambda: c.update_one({"_id": "product:1"}, {"$setOnInsert": {"since": 2, "reason": "r1"}}, upsert=True)),
        observe(lambda: c.update_one({"_id": "product:1"}, {"$setOnInsert": {"since": 3, "reason": "r2"}}, upsert=True)),
        observe(lambda: c.update_one({"_id": "product:2"}, {"$setOnInsert": {"since": 1}})),
        observe(lambda: c.find_one({"_id": "product:1"}, {"_id": 1})),
    ]


def capped_pushes(db) -> list:
    c = db["docs"]
    push = lambda tag: {"$push": {"recent": {"$each": [tag], "$slice": -2}}}  # noqa: E731
    return [
        observe(lambda: c.insert_one({"_id": 7, "recent": ["a"]})),
        observe(lambda: c.update_one({"_id": 7}, push("b"))),
        observe(lambda: c.update_one({"_id": 7}, push("c"))),
        observe(lambda: c.update_one({"_id": 8}, push("x"), upsert=True)),
        observe(lambda: c.find({"_id": {"$in": [7, 8, 9]}, "recent": "c"}, {"_id": 1})),
        observe(lambda: c.find({"_id": {"$in": [7, 8, 9]}, "recent": "a"}, {"_id": 1})),
    ]


def find_one_and_update_upserts(db) -> list:
    c = db["docs"]
    update = lambda v: {"$set": {"name": f"v{v}", "version": v}, "$inc": {"units": 2}}  # noqa: E731
    return [
        observe(lambda: c.find_one_and_update({"_id": 3}, update(1), upsert=True)),
        observe(lambda: c.find_one_and_update({"_id": 3}, update(1), upsert=True)),
        observe(lambda: c.find_one_and_update({"_id": 3}, update(4), upsert=True, return_document=ReturnDocument.AFTER)),
    ]


def unordered_bulk_writes(db) -> list:
    c = db["docs"]
    c.insert_many([{"_id": 1, "version": 1}, {"_id": 2, "version": 3}])
    return [
        observe(lambda: c.bulk_write([
            UpdateOne({"_id": 1, "version": 1}, {"$set": {"version": 2}, "$inc": {"n": 1}}),
            InsertOne({"_id": 2, "version": 1}),
            UpdateOne({"_id": 2, "version": 5}, {"$set": {"version": 6}}),
            InsertOne({"_id": 4, "version": 1}),
        ], ordered=False)),
        observe(lambda: c.bulk_write([
            UpdateOne({"_id": 1, "version": 2}, {"$set": {"version": 3}}),
            InsertOne({"_id": 5, "version": 1}),
        ], ordered=False)),
    ]


def ordered_bulk_writes_stop_at_the_first_error(db) -> list:
    c = db["docs"]
    c.insert_one({"_id": 1, "version": 1})
    return [
        observe(lambda: c.bulk_write([
            InsertOne({"_id": 2, "version": 1}),
            InsertOne({"_id": 1, "version": 1}),
            InsertOne({"_id": 3, "version": 1}),
        ], ordered=True)),
    ]


def finds_sorts_and_deletes(db) -> list:
    c = db["parked"]
    c.insert_many([{"_id": "e3", "key": "product:1", "version": 3}, {"_id": "e1", "key": "product:1", "version": 1},
                   {"_id": "e9", "key": "product:2", "version": 2}, {"_id": "e2", "key": "product:1", "version": 2}])
    return [
        observe(lambda: c.find({"key": "product:1"}).sort([("version", 1)])),
        observe(lambda: c.find({"key": "product:1"}, {"version": 1, "_id": 0}).sort([("version", -1)])),
        observe(lambda: c.delete_many({"key": "product:1"})),
        observe(lambda: c.delete_one({"_id": "e9"})),
        observe(lambda: c.delete_one({"_id": "e9"})),
        observe(lambda: c.find_one({"_id": "e9"})),
    ]


def compare_and_set_on_null_and_drops(db) -> list:
    pointer, gone = db["pointer"], db["gone"]
    pointer.update_one({"_id": "g"}, {"$setOnInsert": {"live": 0, "building": None}}, upsert=True)
    gone.insert_one({"_id": 1})
    return [
        observe(lambda: pointer.update_one({"_id": "g", "live": 0, "building": None}, {"$set": {"building": 1}})),
        observe(lambda: pointer.update_one({"_id": "g", "live": 0, "building": None}, {"$set": {"building": 1}})),
        observe(lambda: gone.drop()),
        observe(lambda: gone.drop()),
        observe(lambda: gone.find_one({"_id": 1})),
    ]


SCENARIOS = [
    versioned_updates,
    increments_and_maximum,
    set_on_insert_upserts,
    capped_pushes,
    find_one_and_update_upserts,
    unordered_bulk_writes,
    ordered_bulk_writes_stop_at_the_first_error,
    finds_sorts_and_deletes,
    compare_and_set_on_null_and_drops,
]


def contents(db) -> dict[str, list]:
    return {name: sorted(db[name].find(), key=lambda doc: str(doc["_id"])) for name in sorted(db.list_collection_names())}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_the_double_answers_as_the_server_does(read_db, scenario):
    fake = FakeDatabase()
    expected = scenario(read_db)
    assert scenario(fake) == expected
    assert contents(fake) == contents(read_db)
