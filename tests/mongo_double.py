"""An in-process stand-in for the few pymongo calls the read side's apply rules make.

`FakeDatabase()["products"]` behaves like a pymongo collection for exactly what
`read/versioned.py`, `read/batch.py`, `read/poison.py` and `read/projection.py` call, with
MongoDB's documented semantics: a unique `_id` (DuplicateKeyError), conditional `update_one`
with `matched_count`, upserts (fields from the filter's equalities, then `$setOnInsert`),
`$set`, `$inc`, `$max`, `$push` with `$each`/`$slice`, `find_one_and_update` returning the
document before the update, `drop`, and `bulk_write` in ordered and unordered mode (BulkWriteError with
the counts of what did land). It returns pymongo's own result and error types, so the code under
test cannot tell the difference for these calls.

Anything else (an operator it does not know, a dotted path, another bulk operation) raises
NotImplementedError instead of guessing. tests/integration/test_mongo_double.py runs the same
calls against a real MongoDB-wire server and this double and compares the outcomes.

Not copied from MongoDB: indexes other than `_id`, sessions, write concern, the order of
`find` without a sort (insertion order here, unspecified there), type brackets when comparing
values of different types in `$max` and `sort`.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

from bson import ObjectId
from pymongo import InsertOne, ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError
from pymongo.results import BulkWriteResult, DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

DUPLICATE_KEY = 11000
TYPE_MISMATCH = 14


class FakeDatabase:
    """Collections are created on first use, as MongoDB creates them on first write."""

    def __init__(self) -> None:
        self.collections: dict[str, FakeCollection] = {}

    def __getitem__(self, name: str) -> "FakeCollection":
        return self.collections.setdefault(name, FakeCollection(name))

    def list_collection_names(self) -> list[str]:
        # A collection exists from its first insert on, and stays when emptied.
        return [name for name, collection in self.collections.items() if collection.created]


class FakeCollection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.docs: dict[Any, dict[str, Any]] = {}  # _id -> document, in insertion order
        self.created = False

    # -- reads ----------------------------------------------------------------------------------

    def find(self, filter: Mapping[str, Any] | None = None, projection: Any = None) -> "FakeCursor":
        found = [_project(doc, projection) for doc in self.docs.values() if _matches(doc, filter or {})]
        return FakeCursor(found)

    def find_one(self, filter: Mapping[str, Any] | None = None, projection: Any = None) -> dict[str, Any] | None:
        return next(iter(self.find(filter, projection)), None)

    def count_documents(self, filter: Mapping[str, Any]) -> int:
        return sum(1 for doc in self.docs.values() if _matches(doc, filter))

    # -- writes ---------------------------------------------------------------------------------

    def drop(self) -> None:
        """Gone with its documents, as MongoDB drops a collection; dropping none is no error."""
        self.docs.clear()
        self.created = False

    def insert_one(self, document: Mapping[str, Any]) -> InsertOneResult:
        return InsertOneResult(self._insert(document), acknowledged=True)

    def insert_many(self, documents: Iterable[Mapping[str, Any]]) -> InsertManyResult:
        return InsertManyResult([self._insert(document) for document in documents], acknowledged=True)

    def update_one(self, filter: Mapping[str, Any], update: Mapping[str, Any], upsert: bool = False) -> UpdateResult:
        return UpdateResult(self._update(filter, update, upsert), acknowledged=True)

    def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Mapping[str, Any],
        projection: Any = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
    ) -> dict[str, Any] | None:
        before = self.find_one(filter)
        raw = self._update(filter, update, upsert)
        if return_document == ReturnDocument.BEFORE:
            return _project(before, projection) if before is not None else None
        doc_id = before["_id"] if before is not None else raw.get("upserted")
        return _project(self.docs[doc_id], projection) if doc_id in self.docs else None

    def delete_one(self, filter: Mapping[str, Any]) -> DeleteResult:
        for doc_id, doc in list(self.docs.items()):
            if _matches(doc, filter):
                del self.docs[doc_id]
                return DeleteResult({"n": 1}, acknowledged=True)
        return DeleteResult({"n": 0}, acknowledged=True)

    def delete_many(self, filter: Mapping[str, Any]) -> DeleteResult:
        doomed = [doc_id for doc_id, doc in self.docs.items() if _matches(doc, filter)]
        for doc_id in doomed:
            del self.docs[doc_id]
        return DeleteResult({"n": len(doomed)}, acknowledged=True)

    def bulk_write(self, requests: Iterable[Any], ordered: bool = True) -> BulkWriteResult:
        """Each write on its own (MongoDB's bulk writes are not transactions); with
        `ordered=False` a failed write does not stop the ones after it."""
        details: dict[str, Any] = {
            "writeErrors": [], "writeConcernErrors": [], "nInserted": 0, "nUpserted": 0,
            "nMatched": 0, "nModified": 0, "nRemoved": 0, "upserted": [],
        }
        for index, request in enumerate(requests):
            try:
                if isinstance(request, InsertOne):
                    # pymongo keeps the operation's arguments in these attributes (since 3.0).
                    self._insert(request._doc)
                    details["nInserted"] += 1
                elif isinstance(request, UpdateOne):
                    raw = self._update(request._filter, request._doc, bool(request._upsert))
                    if "upserted" in raw:
                        details["nUpserted"] += 1
                        details["upserted"].append({"index": index, "_id": raw["upserted"]})
                    else:
                        details["nMatched"] += raw["n"]
                        details["nModified"] += raw["nModified"]
                else:
                    raise NotImplementedError(f"the double does not bulk-write {type(request).__name__}")
            except (DuplicateKeyError, WriteError) as exc:
                details["writeErrors"].append({"index": index, "code": exc.code, "errmsg": str(exc), "op": request})
                if ordered:
                    break
        if details["writeErrors"]:
            raise BulkWriteError(details)
        return BulkWriteResult(details, acknowledged=True)

    # -- the rules --------------------------------------------------------------------------------

    def _insert(self, document: Mapping[str, Any]) -> Any:
        doc = copy.deepcopy(dict(document))
        doc.setdefault("_id", ObjectId())
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(
                f"E11000 duplicate key error collection: {self.name} index: _id_ dup key: {{ _id: {doc['_id']!r} }}",
                DUPLICATE_KEY,
                {"code": DUPLICATE_KEY, "keyPattern": {"_id": 1}, "keyValue": {"_id": doc["_id"]}},
            )
        self.docs[doc["_id"]] = doc
        self.created = True
        return doc["_id"]

    def _update(self, filter: Mapping[str, Any], update: Mapping[str, Any], upsert: bool) -> dict[str, Any]:
        _check_update(update)
        for doc in self.docs.values():
            if _matches(doc, filter):
                changed = _apply(copy.deepcopy(doc), update, inserting=False)
                modified = changed != doc
                self.docs[doc["_id"]] = changed
                return {"n": 1, "nModified": int(modified), "ok": 1.0}
        if not upsert:
            return {"n": 0, "nModified": 0, "ok": 1.0}
        # An upsert's new document starts from the filter's plain equalities.
        seed = {name: value for name, value in filter.items() if not _is_operator_expression(value)}
        doc_id = self._insert(_apply(copy.deepcopy(seed), update, inserting=True))
        return {"n": 1, "nModified": 0, "upserted": doc_id, "ok": 1.0}


class FakeCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def sort(self, key_or_list: Any, direction: int | None = None) -> "FakeCursor":
        keys = [(key_or_list, direction or 1)] if isinstance(key_or_list, str) else list(key_or_list)
        for name, order in reversed(keys):  # stable sorts, last key first
            missing = [doc for doc in self.docs if name not in doc]
            present = sorted((doc for doc in self.docs if name in doc), key=lambda doc: doc[name],
                             reverse=order == -1)
            # A missing field sorts as null: before every value ascending, after them descending.
            self.docs = missing + present if order == 1 else present + missing
        return self

    def limit(self, count: int) -> "FakeCursor":
        if count:  # 0: no limit, as in MongoDB
            self.docs = self.docs[:count]
        return self

    def __iter__(self):
        return iter(self.docs)


# --- filters, projections and update operators --------------------------------------------------


def _is_operator_expression(value: Any) -> bool:
    return isinstance(value, Mapping) and any(str(key).startswith("$") for key in value)


def _matches(doc: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(_field_matches(doc, name, condition) for name, condition in filter.items())


def _field_matches(doc: Mapping[str, Any], name: str, condition: Any) -> bool:
    if name.startswith("$") or "." in name:
        raise NotImplementedError(f"the double does not filter on {name!r}")
    present, value = name in doc, doc.get(name)
    if _is_operator_expression(condition):
        for operator, operand in condition.items():
            if operator == "$in":
                if not any(_equals(value, candidate, present) for candidate in operand):
                    return False
            elif operator in _ORDER:
                if not (present and _is_number(value) and _ORDER[operator](value, operand)):
                    return False
            else:
                raise NotImplementedError(f"the double does not know the query operator {operator}")
        return True
    return _equals(value, condition, present)


_ORDER = {"$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b,
          "$lte": lambda a, b: a <= b}  # numbers only: MongoDB's type brackets are not copied


def _equals(value: Any, wanted: Any, present: bool) -> bool:
    if wanted is None:
        return value is None  # MongoDB: {"f": null} matches a missing field too
    if not present:
        return False
    # An array field matches a value it contains, as well as an equal array.
    if isinstance(value, list) and not isinstance(wanted, list):
        return any(_same(item, wanted) for item in value)
    return _same(value, wanted)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b  # BSON keeps booleans and numbers apart: True is not 1
    return a == b


def _project(doc: Mapping[str, Any], projection: Any) -> dict[str, Any]:
    doc = copy.deepcopy(dict(doc))
    if not projection:
        return doc
    fields = dict.fromkeys(projection, 1) if isinstance(projection, (list, tuple)) else dict(projection)
    if "." in "".join(fields):
        raise NotImplementedError("the double does not project dotted paths")
    keep_id = fields.pop("_id", 1)
    if fields and all(fields.values()):  # inclusion
        kept = {name: doc[name] for name in fields if name in doc}
    elif fields:  # exclusion
        kept = {name: value for name, value in doc.items() if name not in fields}
    else:
        kept = {name: value for name, value in doc.items() if name == "_id"}
    if keep_id and "_id" in doc:
        kept = {"_id": doc["_id"], **kept}
    else:
        kept.pop("_id", None)
    return kept


UPDATE_OPERATORS = ("$set", "$setOnInsert", "$inc", "$max", "$push")


def _check_update(update: Mapping[str, Any]) -> None:
    if not update or not all(operator in UPDATE_OPERATORS for operator in update):
        raise NotImplementedError(f"the double applies only {UPDATE_OPERATORS}, not {list(update)}")
    for fields in update.values():
        if "_id" in fields:
            raise WriteError("Performing an update on the path '_id' would modify the immutable field '_id'", 66)
        if any("." in name or name.startswith("$") for name in fields):
            raise NotImplementedError(f"the double does not update dotted or operator paths: {list(fields)}")
    touched = [name for fields in update.values() for name in fields]
    conflicts = {name for name in touched if touched.count(name) > 1}
    if conflicts:
        # MongoDB rejects one update that names a field under two operators.
        raise WriteError(f"Updating the path {sorted(conflicts)[0]!r} would create a conflict", 40)


def _apply(doc: dict[str, Any], update: Mapping[str, Any], inserting: bool) -> dict[str, Any]:
    for operator, fields in update.items():
        for name, operand in fields.items():
            if operator == "$set":
                doc[name] = copy.deepcopy(operand)
            elif operator == "$setOnInsert":
                if inserting:
                    doc[name] = copy.deepcopy(operand)
            elif operator == "$inc":
                current = doc.get(name, 0)
                if not _is_number(current) or not _is_number(operand):
                    raise WriteError(f"Cannot apply $inc to a value of non-numeric type ({name!r})", TYPE_MISMATCH)
                doc[name] = current + operand
            elif operator == "$max":
                if name not in doc or operand > doc[name]:
                    doc[name] = copy.deepcopy(operand)
            elif operator == "$push":
                doc[name] = _pushed(doc, name, operand)
    return doc


def _pushed(doc: Mapping[str, Any], name: str, operand: Any) -> list[Any]:
    current = doc.get(name, [])
    if not isinstance(current, list):
        raise WriteError(f"The field {name!r} must be an array", 2)
    if _is_operator_expression(operand):
        unknown = set(operand) - {"$each", "$slice"}
        if unknown:
            raise NotImplementedError(f"the double does not know $push modifiers {sorted(unknown)}")
        items = current + copy.deepcopy(list(operand["$each"]))
        limit = operand.get("$slice")
        if limit is None:
            return items
        return items[limit:] if limit < 0 else items[:limit]
    return current + [copy.deepcopy(operand)]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
