"""Generated requests against both services.

The properties, for every request a client can send:

* no 5xx: the services answer every request with a client error or a success, never a crash;
* every answer is JSON, every error is `{"error": code, "message": text, ...}`, and its status is
  one the service's own /openapi.json documents for that operation;
* nothing a request sends becomes a MongoDB operator or SQL: operator-looking query parameters
  are either refused (400) or matched as literal text, and SQL-looking text is stored and read
  back verbatim while the tables stay where they were.

These tests drive the Flask test clients with Hypothesis strategies written here (arbitrary
JSON, near-valid bodies, raw bytes, content types, path ids, If-Match headers, query strings).
test_fuzzer.py points schemathesis, with all of its checks, at the live services'
/openapi.json. Every generated request is counted (see conftest.py: build/property-cases.json).
"""

from __future__ import annotations

import json
import re
import string
import time
import urllib.parse
from decimal import Decimal
from typing import Any

import simplejson
import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cqrs_demo.write.commands import MAX_PRICE, MAX_QUANTITY


def budget(max_examples: int) -> hsettings:
    return hsettings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# --- the documents ---------------------------------------------------------------------------

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


class OpenApi:
    """A service's /openapi.json as the service itself serves it."""

    def __init__(self, client) -> None:
        response = client.get("/openapi.json")
        assert response.status_code == 200 and response.is_json
        self.doc = response.get_json()

    def operation(self, method: str, template: str) -> dict | None:
        return self.doc["paths"].get(template, {}).get(method.lower())

    def statuses(self, method: str, template: str) -> set[str]:
        operation = self.operation(method, template)
        assert operation is not None, f"{method} {template} is not in the document"
        return set(operation["responses"])

    def templates(self) -> set[tuple[str, str]]:
        return {
            (method.upper(), template)
            for template, item in self.doc["paths"].items()
            for method in item
            if method in HTTP_METHODS
        }


def check(
    doc: OpenApi, method: str, template: str, response, sent: str, cases, unavailable: str | None = None
) -> Any:
    """The answer is JSON, an error carries error and message, and its status is documented.

    `cases` counts the request, under its operation and status.

    No 5xx, except `unavailable`: the one 503 error code an operation documents on purpose
    (`read_model_behind`, when a `min_version` is not reached in time).
    """
    status = response.status_code
    cases(f"{method} {template} -> {status}")
    where = f"{method} {sent}\n-> {status} {response.headers.get('Content-Type')}: {response.get_data()[:600]!r}"
    if status == 503 and unavailable is not None and response.is_json:
        assert (response.get_json() or {}).get("error") == unavailable, f"server error\n{where}"
    else:
        assert status < 500, f"server error\n{where}"
    assert response.mimetype == "application/json", f"answer is not JSON\n{where}"
    try:
        body = json.loads(response.get_data(as_text=True))
    except ValueError:
        raise AssertionError(f"answer does not parse as JSON\n{where}") from None
    if status >= 400:
        assert isinstance(body, dict), f"error body is not an object\n{where}"
        assert isinstance(body.get("error"), str) and body["error"], f"error body has no error code\n{where}"
        assert isinstance(body.get("message"), str) and body["message"], f"error body has no message\n{where}"
        if "fields" in body:
            assert isinstance(body["fields"], dict), f"error fields is not an object\n{where}"
    documented = doc.statuses(method, template)
    assert str(status) in documented or "default" in documented, (
        f"status {status} is not documented for {method} {template} (documented: {sorted(documented)})\n{where}"
    )
    return body


# --- strategies: values ----------------------------------------------------------------------

OPERATOR_KEYS = [
    "$where", "$gt", "$gte", "$lt", "$lte", "$ne", "$eq", "$in", "$nin", "$regex", "$options",
    "$expr", "$function", "$or", "$and", "$not", "$nor", "$exists", "$type", "$elemMatch",
    "$set", "$unset", "$inc", "$lookup", "$jsonSchema", "$text", "$search", "__proto__", "constructor",
]
SQL_TEXT = [
    "x'; DROP TABLE products; --",
    "x\"; DROP TABLE products; --",
    "' OR '1'='1",
    "' OR 1=1 --",
    "1; DELETE FROM products",
    "'); TRUNCATE outbox; --",
    "Robert'); DROP TABLE orders;--",
    "' UNION SELECT NULL, version() --",
    "1' AND pg_sleep(2) IS NULL --",
    "$$; DROP SCHEMA public CASCADE; $$",
    "%' --",
    "%_%",
    "\\'; SELECT 1; --",
    "E'\\x27'",
    "::text",
    "/* comment */ name",
    "'';!--\"<XSS>=&{()}",
]
NASTY_TEXT = [
    "", " ", "   ", "\t", "\n", "\x00", "a\x00b", "NaN", "nan", "Infinity", "-Infinity", "null", "None",
    "true", "false", "undefined", "0", "-0", "1e999", "1E+400", "0x10", "0b1", "1_000", "\u0661\u0662\u0663",
    "\uff11\uff12", "\u202eevil", "\ufeffbom", "\u200b", "e\u0301", "\U0001f600", "\U0001f600" * 30,
    "\ud800", "x\udfffy", "a" * 100, "a" * 101, "s" * 64, "s" * 65, "d" * 2000, "d" * 2001,
    '{"$gt": ""}', '{"$ne": null}', "[$ne]", "$where", "this.price > 0", "function() { return true; }",
    ".*", "^$", "(?i)a", "\\", "%", "_", *SQL_TEXT, *OPERATOR_KEYS,
]
HUGE_NUMBERS = [
    2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -1, -(10**30),
    Decimal("1E+400"), Decimal("1E-400"), Decimal("-0.00"), Decimal("0.001"), Decimal("9999999999.99"),
    Decimal("9999999999.995"), Decimal("10000000000.00"), Decimal("12.345"), Decimal("1e2"), Decimal("NaN"),
    Decimal("Infinity"), Decimal("-Infinity"), float("nan"), float("inf"), 1.5, 0.1, -0.0,
]

any_text = st.one_of(
    st.text(max_size=30),
    # lone surrogates too: they travel as \uXXXX escapes, which JSON allows and UTF-8 cannot store
    st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=10),
    st.sampled_from(NASTY_TEXT),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from(HUGE_NUMBERS),
    any_text,
)
json_keys = st.one_of(st.sampled_from(OPERATOR_KEYS), st.text(max_size=10), st.sampled_from(NASTY_TEXT))
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(json_keys, children, max_size=4),
    ),
    max_leaves=12,
)
operator_objects = st.dictionaries(st.sampled_from(OPERATOR_KEYS), json_values, min_size=1, max_size=2)


def encode(value: Any) -> bytes:
    """JSON text as a client would send it; NaN and Infinity come out as their (invalid) tokens."""
    return simplejson.dumps(value, use_decimal=True, allow_nan=True, ensure_ascii=True).encode()


def junk(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the valid kind of value, often something else entirely."""
    return st.one_of(valid, valid, json_scalars, operator_objects, json_values)


valid_names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=100).filter(
    lambda s: s.strip()
)
valid_prices = st.decimals(min_value=0, max_value=MAX_PRICE, places=2)
valid_quantities = st.integers(0, MAX_QUANTITY)
valid_skus = st.uuids().map(lambda u: "sku-" + u.hex[:16])

FIELD_VALUES = {
    "name": junk(valid_names),
    "description": junk(st.text(max_size=40)),
    "price": junk(valid_prices),
    "quantity": junk(valid_quantities),
    "sku": junk(valid_skus),
}
extra_fields = st.dictionaries(st.one_of(st.sampled_from(OPERATOR_KEYS), st.text(max_size=8)), json_values, max_size=2)


@st.composite
def product_bodies(draw, patch: bool = False):
    """A product body near the valid one: each field valid, wrong, missing or an operator."""
    if not patch and draw(st.booleans()):
        body = {
            "name": draw(valid_names),
            "description": draw(st.text(max_size=40)),
            "price": draw(valid_prices),
            "quantity": draw(valid_quantities),
            "sku": draw(valid_skus),
        }
    else:
        body = draw(st.fixed_dictionaries({}, optional=FIELD_VALUES))
    if draw(st.booleans()):  # spoil a field or two
        for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), min_size=1, max_size=2, unique=True)):
            body[name] = draw(FIELD_VALUES[name])
    if draw(st.integers(0, 4)) == 0:
        body.update(draw(extra_fields))
    return body


CONTENT_TYPES = [
    None, "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "application/JSON", "application/merge-patch+json", "application/vnd.api+json", "application/problem+json",
    "application/json;;", "application/json; boundary=x", "text/json", "text/plain", "text/html", "*/*",
    "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=xyz",
    "application/octet-stream", "application/xml", "", ";", "json",
]
content_types = st.one_of(
    st.sampled_from(CONTENT_TYPES),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)

# Nesting the services parse (the limit is near 950 levels, Python's recursion limit less the
# request's own stack); deeper nesting: test_deeply_nested_json_is_a_client_error.
SHALLOW = 400
DEEP = [1000, 5000, 30000]
RAW_BODIES = [
    b"", b" ", b"{", b"}", b"[]", b"null", b"0", b'"x"', b"{}", b"{,}", b'{"name"}', b'{"name": }',
    b'{"price": NaN, "name": "a", "quantity": 1, "sku": "a"}', b'{"price": Infinity}', b'{"price": -Infinity}',
    b'{"price": 1e999999999, "name": "a", "quantity": 1, "sku": "a"}',
    b'{"name": "\\ud800", "price": 1, "quantity": 1, "sku": "lone-surrogate"}',
    b'{"name": "a", "price": 1, "quantity": 1, "sku": "\\udfff"}',
    b'{"name": "a\\u0000", "price": 1, "quantity": 1, "sku": "nul"}',
    b'{"name": "a", "name": "b", "price": 1, "quantity": 1, "sku": "dup-key"}',
    b"\xef\xbb\xbf{}", b"\xff\xfe{\x00}\x00", b"\xc3\x28", b"\x80\x81", b"{\"name\": \"\xff\"}",
    b"[" * SHALLOW + b"]" * SHALLOW,
    b'{"a":' * SHALLOW + b"1" + b"}" * SHALLOW,
    b'{"name": ' + b"[" * SHALLOW + b"]" * SHALLOW + b"}",
    b"1" * 5000,
    b'{"quantity": ' + b"9" * 5000 + b', "name": "a", "price": 1, "sku": "big"}',
    b'{"price": 0.' + b"0" * 5000 + b'1, "name": "a", "quantity": 1, "sku": "tiny"}',
    b" " * (64 * 1024 + 1),
    b'{"name": "' + b"a" * (64 * 1024) + b'"}',
]


@st.composite
def raw_bodies(draw):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.sampled_from(RAW_BODIES))
    if kind == 1:
        return draw(st.binary(max_size=200))
    data = encode(draw(product_bodies() if kind == 2 else json_values))
    mangle = draw(st.integers(0, 3))
    if mangle == 1:  # cut short
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if mangle == 2:  # trailing garbage
        return data + draw(st.binary(min_size=1, max_size=10))
    return data


id_texts = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    # 4300 digits is the longest integer Python converts; longer ones: test_over_long_ids_are_not_found
    st.sampled_from(["0", "-1", "00", "01", str(2**31), str(2**63 - 1), str(2**63), str(2**64), "9" * 30, "9" * 4300,
                     "1.5", "1e3", "abc", " 1", "1 ", "+1", "\u0661", "%", "null", "$ne", "[$ne]"]),
    st.text(max_size=8).filter(lambda s: "/" not in s),
)
if_match = st.one_of(
    st.none(),
    st.sampled_from(["*", " * ", '"1"', "1", 'W/"1"', 'W/"2"', '"2"', "0", '"0"', "000000001", "999999999",
                     "1000000000", "9" * 30, '"1", "2"', "W/", '""', '"', "", " ", "\uff11", "-1", "1.0", "$ne"]),
    st.integers(0, 2**64).map(lambda v: f'"{v}"'),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=20),
)


def path_for(template: str, ident: str) -> str:
    return re.sub(r"\{[^}]+\}", urllib.parse.quote(ident, safe=""), template)


# --- strategies: query strings ---------------------------------------------------------------

QUERY_KEYS = ["limit", "offset", "q", "min_price", "max_price", "in_stock", "sort", "customer", "status", "min_version"]
OPERATOR_PARAMS = [
    f"{key}{suffix}"
    for key in ("q", "name", "customer", "status", "limit", "min_price", "in_stock", "sort", "price_cents")
    for suffix in ("[$ne]", "[$gt]", "[$regex]", "[$where]", "[]", "[0]", ".$ne", "[$exists]")
] + ["$where", "$ne", "[$ne]", "__proto__", "deleted", "_id", "q%00", "Q", "LIMIT", "q ", " q"]
QUERY_VALUES = [
    '{"$ne": null}', '{"$gt": ""}', '{"$where": "sleep(1000)"}', '{"$regex": ".*"}', "[1, 2]", "[]", "{}",
    "null", "true", "false", "yes", "on", "1", "0", "t", "NaN", "Infinity", "-Infinity", "-0", "1e3", "1E+999999999",
    "1e-999999999", "0x10", "\u0661\u0660", "\uff15", " 5", "5 ", "+5", "1_000", "10.001", "0.01", "-0.01", "-1",
    str(2**31), str(2**63), "9" * 5000, "\x00", "a\x00", "$ne", ".*", "^", "\\", "(", "[", "a" * 100, "a" * 101,
    "id", "-id", "name", "-price", "quantity", "$natural", "placed", "cancelled", "PLACED", "price_cents",
    *SQL_TEXT[:6],
]
query_keys = st.one_of(st.sampled_from(QUERY_KEYS), st.sampled_from(OPERATOR_PARAMS), st.text(max_size=10))
query_values = st.one_of(
    st.sampled_from(QUERY_VALUES),
    st.text(max_size=20),
    st.integers(-(2**70), 2**70).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)
SORTS = ["id", "-id", "name", "-name", "price", "-price", "quantity", "-quantity"]
_prices = st.decimals(min_value=0, max_value=1000, places=2).map(str)
PLAUSIBLE = {  # a value each parameter takes
    "limit": st.integers(1, 100).map(str),
    "offset": st.integers(0, 50).map(str),
    "q": st.text(string.ascii_letters + " $.*", max_size=5),
    "min_price": _prices,
    "max_price": _prices,
    "in_stock": st.sampled_from(["true", "false", "1", "0", "yes", "no", "on", "off"]),
    "sort": st.sampled_from(SORTS),
    "customer": st.text(string.ascii_letters, max_size=5),
    "status": st.sampled_from(["placed", "cancelled"]),
    "min_version": st.integers(1, 10).map(str),
}
RAW_QUERY_ALPHABET = string.ascii_letters[:8] + string.digits + "%&=+;[]$.{}\"'#?/ _-\x00"


@st.composite
def query_strings(draw, known: list[str] = QUERY_KEYS) -> str:
    """A query string: encoded pairs (repeated keys allowed), or raw text with broken escapes.

    `known`: the parameter names drawn most often, with plausible values as often as not.
    """
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.text(RAW_QUERY_ALPHABET, max_size=40)).replace("#", "%23").replace("?", "%3F")
    if kind <= 3:  # the parameters the services know, with plausible values as often as not
        names = draw(st.lists(st.sampled_from(known), max_size=3, unique=True))
        pairs = [(name, draw(st.one_of(PLAUSIBLE[name], PLAUSIBLE[name], query_values))) for name in names]
    else:
        pairs = draw(st.lists(st.tuples(query_keys, query_values), max_size=4))
    if pairs and draw(st.integers(0, 5)) == 0:
        pairs.append(draw(st.sampled_from(pairs)))  # a repeated key
    return urllib.parse.urlencode(pairs)


# --- the command service through its test client --------------------------------------------


def test_create_product_with_generated_json(command_client, cases):
    doc = OpenApi(command_client)

    counter = iter(range(10**9))

    @budget(250)
    @given(body=st.one_of(product_bodies(), product_bodies(), json_values), fresh_sku=st.booleans())
    def run(body, fresh_sku):
        # Hypothesis repeats simple uuids often: make the sku unique half the time, so that both
        # 201 and 409 duplicate_sku are common.
        if fresh_sku and isinstance(body, dict) and isinstance(body.get("sku"), str) and body["sku"].strip():
            body = {**body, "sku": body["sku"][:50] + f"~{next(counter)}"}
        data = encode(body)
        note(f"body: {data[:2000]!r}")
        response = command_client.post("/api/products", data=data, content_type="application/json")
        answer = check(doc, "POST", "/api/products", response, f"/api/products {data[:300]!r}", cases)
        if isinstance(body, dict) and (
            any(key not in FIELD_VALUES for key in body) or any(isinstance(value, dict) for value in body.values())
        ):
            # an operator-looking (or any unknown) key, or an object where a field's value goes: refused
            assert response.status_code in (400, 422), f"accepted {data[:300]!r}: {response.get_data()[:300]!r}"
        if response.status_code == 201:
            assert answer["version"] == 1 and answer["sku"] == body["sku"].strip()
            assert answer["name"] == body["name"].strip()

    run()


def test_product_writes_with_raw_bytes_and_content_types(command_client, cases):
    doc = OpenApi(command_client)
    seeded = command_client.post(
        "/api/products", json={"name": "seed", "price": Decimal("1.00"), "quantity": 5, "sku": "seed-raw"}
    )
    assert seeded.status_code == 201
    seed_id = str(seeded.get_json()["id"])

    @budget(250)
    @given(
        method=st.sampled_from(["POST", "PUT", "PATCH"]),
        content_type=st.one_of(st.just("application/json"), content_types),
        data=raw_bodies(),
        ident=st.one_of(st.just(seed_id), id_texts),
    )
    def run(method, content_type, data, ident):
        template = "/api/products" if method == "POST" else "/api/products/{product_id}"
        path = path_for(template, ident)
        note(f"{method} {path} Content-Type {content_type!r} body {data[:2000]!r}")
        response = command_client.open(path, method=method, data=data, content_type=content_type)
        check(doc, method, template, response, f"{path} [{content_type!r}] {data[:300]!r}", cases)

    run()


def test_product_changes_with_generated_ids_and_if_match(command_client, cases):
    doc = OpenApi(command_client)
    ids = []
    for n in range(8):
        response = command_client.post(
            "/api/products", json={"name": f"p{n}", "price": Decimal("2.50"), "quantity": 10, "sku": f"change-{n}"}
        )
        assert response.status_code == 201
        ids.append(str(response.get_json()["id"]))
    # DELETE draws from its own products, so that the ones PUT and PATCH draw stay there
    kept, deletable = ids[:4], ids[4:]
    template = "/api/products/{product_id}"

    @budget(250)
    @given(
        method=st.sampled_from(["PUT", "PUT", "PATCH", "PATCH", "DELETE"]),
        known=st.booleans(),
        version=st.one_of(st.none(), st.sampled_from(['"1"', '"2"', '"3"', "2", 'W/"2"']), if_match),
        data=st.data(),
    )
    def run(method, known, version, data):
        pool = deletable if method == "DELETE" else kept
        ident = data.draw(st.sampled_from(pool) if known else id_texts, label="id")
        path = path_for(template, ident)
        headers = {} if version is None else {"If-Match": version}
        body = None
        if method != "DELETE":
            body = data.draw(product_bodies(patch=method == "PATCH"), label="body")
        raw = b"" if body is None else encode(body)
        response = command_client.open(
            path, method=method, headers=headers, data=raw, content_type="application/json" if body is not None else None
        )
        check(doc, method, template, response, f"{path} If-Match {version!r} {raw[:300]!r}", cases)

    run()


def test_orders_with_generated_bodies(command_client, cases):
    doc = OpenApi(command_client)
    products = []
    for n in range(3):
        response = command_client.post(
            "/api/products", json={"name": f"o{n}", "price": Decimal("3.10"), "quantity": 10**6, "sku": f"order-{n}"}
        )
        assert response.status_code == 201
        products.append(response.get_json())
    order_ids: list[str] = []

    product_ids = st.one_of(
        st.sampled_from([p["id"] for p in products]),
        junk(st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, 10**30])),
    )
    skus = junk(st.sampled_from([p["sku"] for p in products] + ["no-such-sku", " order-0 ", "ORDER-0", "%"]))
    quantities = junk(st.one_of(st.integers(1, 5), st.sampled_from([0, -1, 10**7, MAX_QUANTITY, 2**31, 2**63])))
    lines = st.fixed_dictionaries({}, optional={"sku": skus, "product_id": product_ids, "quantity": quantities})
    line_lists = st.one_of(
        st.lists(lines, max_size=4),
        st.integers(49, 52).map(lambda n: [{"product_id": i + 1, "quantity": 1} for i in range(n)]),
        json_values,
    )
    near_valid = st.builds(
        lambda body, extra: {**body, **extra},
        st.fixed_dictionaries({}, optional={"customer": junk(valid_names), "lines": line_lists}),
        st.one_of(st.just({}), extra_fields),
    )

    @st.composite
    def valid_orders(draw):
        chosen = draw(st.lists(st.sampled_from(products), min_size=1, max_size=3, unique_by=lambda p: p["id"]))
        return {
            "customer": draw(valid_names),
            "lines": [
                {**({"sku": p["sku"]} if draw(st.booleans()) else {"product_id": p["id"]}),
                 "quantity": draw(st.integers(1, 3))}
                for p in chosen
            ],
        }

    orders = st.one_of(valid_orders(), near_valid)

    @budget(250)
    @given(
        kind=st.sampled_from(["json", "json", "json", "raw", "cancel"]),
        body=orders,
        content_type=st.one_of(st.just("application/json"), content_types),
        data=raw_bodies(),
        ident=id_texts,
        pick=st.integers(0, 10**6),
    )
    def run(kind, body, content_type, data, ident, pick):
        if kind == "cancel":
            template = "/api/orders/{order_id}/cancel"
            if order_ids and pick % 2:
                ident = order_ids[pick % len(order_ids)]
            path = path_for(template, ident)
            response = command_client.post(path)
            check(doc, "POST", template, response, path, cases)
            return
        if kind == "json":
            data, content_type = encode(body), "application/json"
        note(f"POST /api/orders [{content_type!r}] {data[:2000]!r}")
        response = command_client.post("/api/orders", data=data, content_type=content_type)
        answer = check(doc, "POST", "/api/orders", response, f"/api/orders [{content_type!r}] {data[:300]!r}", cases)
        if response.status_code == 201:
            order_ids.append(str(answer["id"]))

    run()


BODY_OPERATIONS = [
    ("POST", "/api/products"),
    ("PUT", "/api/products/{product_id}"),
    ("PATCH", "/api/products/{product_id}"),
    ("POST", "/api/orders"),
]


def _send_bodies(command_client, cases, bodies: list[bytes]) -> list[str]:
    """Each body to each operation that takes one, as application/json; the failures, described."""
    doc = OpenApi(command_client)
    seeded = command_client.post(
        "/api/products", json={"name": "hostile", "price": Decimal("1.00"), "quantity": 5, "sku": "hostile"}
    )
    assert seeded.status_code == 201
    failures = []
    for method, template in BODY_OPERATIONS:
        path = path_for(template, str(seeded.get_json()["id"]))
        for data in bodies:
            response = command_client.open(path, method=method, data=data, content_type="application/json")
            try:
                check(doc, method, template, response, f"{path} {data[:120]!r}... ({len(data)} bytes)", cases)
            except AssertionError as exc:
                failures.append(str(exc).split("\nassert")[0])
    return failures


def test_known_hostile_bodies(command_client, cases):
    """Every hand-picked hostile body, to every operation that takes a body: a documented 4xx or a 2xx."""
    failures = _send_bodies(command_client, cases, RAW_BODIES)
    assert not failures, "\n\n".join(failures)


def test_deeply_nested_json_is_a_client_error(command_client, cases):
    bodies = [b"[" * depth + b"]" * depth for depth in DEEP] + [b'{"a":' * depth + b"1" + b"}" * depth for depth in DEEP]
    failures = _send_bodies(command_client, cases, bodies)
    assert not failures, "\n\n".join(failures)


def test_over_long_ids_are_not_found(command_client, cases):
    doc = OpenApi(command_client)
    failures = []
    for digits in (4301, 5000):
        for method in ("PUT", "PATCH", "DELETE"):
            path = "/api/products/" + "9" * digits
            body = {"name": "x", "price": 1, "quantity": 1, "sku": "x"} if method != "DELETE" else None
            response = command_client.open(path, method=method, json=body)
            try:
                check(doc, method, "/api/products/{product_id}", response, f"/api/products/<{digits} nines>", cases)
                assert response.status_code == 404
            except AssertionError as exc:
                failures.append(str(exc).split("\nassert")[0])
    assert not failures, "\n\n".join(failures)


# --- the query service through its test client ----------------------------------------------

LISTS = {  # each list and the parameters it takes
    "/api/products": ["limit", "offset", "q", "min_price", "max_price", "in_stock", "sort"],
    "/api/orders": ["limit", "offset", "customer", "status"],
    "/api/stats/top-products": ["limit"],
    "/api/projection": QUERY_KEYS,  # takes none
}


def test_query_lists_with_generated_query_strings(query_client, cases):
    doc = OpenApi(query_client)

    @budget(300)
    @given(path_and_query=st.sampled_from(sorted(LISTS)).flatmap(lambda p: st.tuples(st.just(p), query_strings(LISTS[p]))))
    def run(path_and_query):
        path, query = path_and_query
        note(f"GET {path}?{query}")
        response = query_client.get(path, query_string=query)
        body = check(doc, "GET", path, response, f"{path}?{query[:300]}", cases)
        if response.status_code == 200 and path != "/api/projection":
            assert isinstance(body, list)

    run()


def test_query_documents_with_generated_ids_and_versions(query_client, cases):
    doc = OpenApi(query_client)
    versions = st.one_of(
        st.integers(-5, 2**64).map(lambda v: urllib.parse.urlencode({"min_version": v})),
        st.sampled_from(["", "min_version=", "min_version=1&min_version=1", "min_version=%7B%22%24gt%22%3A0%7D",
                         "min_version[$gt]=0", "min_version=1.0", "min_version=NaN", "version=1"]),
        query_strings(),
    )

    @budget(150)
    @given(template=st.sampled_from(["/api/products/{product_id}", "/api/orders/{order_id}"]), ident=id_texts,
           query=versions)
    def run(template, ident, query):
        path = path_for(template, ident)
        response = query_client.get(path, query_string=query)
        check(doc, "GET", template, response, f"{path}?{query[:300]}", cases, unavailable="read_model_behind")

    run()


# --- nothing a request sends becomes an operator or SQL -------------------------------------


def _read_settled(query_client, path: str, version: int, timeout: float = 20.0) -> dict:
    """The read model's document once it has `version`; retries the bounded min_version wait."""
    deadline = time.monotonic() + timeout
    while True:
        response = query_client.get(path, query_string={"min_version": version})
        if response.status_code == 200:
            return response.get_json()
        assert response.status_code == 503 and time.monotonic() < deadline, response.get_data(as_text=True)


def _create(command_client, name: str, sku: str, quantity: int = 100, description: str = "") -> dict:
    body = {"name": name, "description": description, "price": Decimal("1.25"), "quantity": quantity, "sku": sku}
    response = command_client.post("/api/products", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


TRAP_NAMES = [
    "Plain apple", "$ne", "price $ne 0", "$where: sleep(100)", '{"$gt": ""}', "[$ne]=1", "$regex .* (?i)", ".*",
    "a+b?c|d", "back\\slash \\d", "^anchored$", "x'; DROP TABLE products; --", "' OR '1'='1", "100% off_sale",
    "this.quantity > 0", "Null", "$$ROOT", "{$exists: true}", "(unclosed [bracket", "NE", "ne",
]
INJECTION_ALPHABET = "$[]{}\"':.*+?^|\\()%_-=<>!&;/# aeinoqrstwxADNPR0129"


def _literal_match(q: str, names: list[str]) -> list[str]:
    if not q:
        return list(names)
    return [name for name in names if re.search(re.escape(q), name, re.IGNORECASE)]


def test_operator_text_in_product_search_matches_only_literally(command_client, query_client, pipeline, cases):
    created = [_create(command_client, name, f"trap-{n}") for n, name in enumerate(TRAP_NAMES)]
    for product in created:
        _read_settled(query_client, f"/api/products/{product['id']}", product["version"])
    names = [product["name"] for product in created]
    assert names == TRAP_NAMES  # stored verbatim

    fragments = st.sampled_from(TRAP_NAMES).flatmap(
        lambda name: st.tuples(st.integers(0, len(name)), st.integers(0, len(name))).map(
            lambda ij: name[min(ij) : max(ij)]
        )
    )
    q_values = st.one_of(
        st.text(INJECTION_ALPHABET, max_size=12),
        st.sampled_from(TRAP_NAMES + OPERATOR_KEYS + QUERY_VALUES),
        fragments,
    )
    q_keys = st.one_of(st.just("q"), st.just("q"), st.just("q"), st.sampled_from(OPERATOR_PARAMS))

    @budget(200)
    @given(pairs=st.lists(st.tuples(q_keys, q_values), min_size=1, max_size=2))
    def run(pairs):
        query = urllib.parse.urlencode(pairs)
        response = query_client.get("/api/products", query_string=query)
        cases(f"GET /api/products?q= -> {response.status_code}")
        where = f"GET /api/products?{query} -> {response.status_code} {response.get_data()[:500]!r}"
        [(key, q)] = pairs if len(pairs) == 1 else [("", "")]
        if key == "q" and len(q) <= 100 and "\x00" not in q:
            assert response.status_code == 200, where
            # compared as sets: the list's order is test_list_order_follows_the_sort_parameter's business
            got = sorted(product["name"] for product in response.get_json())
            expected = sorted(_literal_match(q, names))
            assert got == expected, f"{where}\nexpected exactly the literal matches {expected}"
            assert response.headers["X-Total-Count"] == str(len(expected)), where
        else:
            # an unknown key, a repeated key, or a value over the limit: refused, never reinterpreted
            assert response.status_code == 400, where
            assert response.get_json()["error"] == "invalid_parameter", where

    run()


def test_list_order_follows_the_sort_parameter(command_client, query_client, pipeline, cases):
    created = [
        _create(command_client, name, f"sort-{n}", quantity=(n * 7) % 4)
        for n, name in enumerate(["pear", "Apple", "fig", "apple", "Kiwi", "date", "plum", "lime", "Fig", "yuzu",
                                  "kiwi", "Date"])
    ]
    for n, product in enumerate(created):  # prices: a few ties, so the id tie-break matters
        response = command_client.patch(f"/api/products/{product['id']}", json={"price": Decimal(n % 5)})
        assert response.status_code == 200
        created[n] = response.get_json()
    for product in created:
        _read_settled(query_client, f"/api/products/{product['id']}", product["version"])

    @budget(60)
    @given(sort=st.sampled_from(SORTS), limit=st.integers(1, 14), offset=st.integers(0, 13))
    @example(sort="id", limit=14, offset=0)  # the whole list, default order
    def run(sort, limit, offset):
        response = query_client.get("/api/products", query_string={"sort": sort, "limit": limit, "offset": offset})
        cases(f"GET /api/products?sort= -> {response.status_code}")
        assert response.status_code == 200
        field, descending = sort.lstrip("-"), sort.startswith("-")
        # the field in the asked direction, ties by id ascending; names compare as code points (= UTF-8 bytes)
        ordered = sorted(created, key=lambda p: p["id"])
        ordered = sorted(ordered, key=lambda p: Decimal(p[field]) if field == "price" else p[field], reverse=descending)
        if field == "id":
            ordered = sorted(created, key=lambda p: p["id"], reverse=descending)
        expected = [p["id"] for p in ordered][offset : offset + limit]
        assert [p["id"] for p in response.get_json()] == expected, f"sort={sort} limit={limit} offset={offset}"

    run()


CUSTOMERS = ["alice", "ALICE", "$ne", '{"$ne": null}', "$where", ".*", "x'; DROP TABLE orders; --", "[$ne]", "a.b"]


def test_operator_text_in_order_filters_matches_only_exactly(command_client, query_client, pipeline, cases):
    product = _create(command_client, "stock", "filter-stock", quantity=1000)
    placed = []
    for customer in CUSTOMERS:
        response = command_client.post(
            "/api/orders", json={"customer": customer, "lines": [{"sku": product["sku"], "quantity": 1}]}
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        placed.append(response.get_json())
    for order in placed:
        _read_settled(query_client, f"/api/orders/{order['id']}", order["version"])
    assert [order["customer"] for order in placed] == CUSTOMERS

    customers = st.one_of(
        st.sampled_from(CUSTOMERS),
        st.sampled_from(CUSTOMERS).map(str.swapcase),
        st.sampled_from(CUSTOMERS).map(lambda c: c + " "),
        st.text(INJECTION_ALPHABET, max_size=8),
        st.sampled_from(QUERY_VALUES),
    )
    keys = st.one_of(st.just("customer"), st.just("customer"), st.just("status"), st.sampled_from(OPERATOR_PARAMS))

    @budget(150)
    @given(pairs=st.lists(st.tuples(keys, customers), min_size=1, max_size=2))
    def run(pairs):
        query = urllib.parse.urlencode(pairs)
        response = query_client.get("/api/orders", query_string=query)
        cases(f"GET /api/orders?customer= -> {response.status_code}")
        where = f"GET /api/orders?{query} -> {response.status_code} {response.get_data()[:500]!r}"
        given_keys = [key for key, _ in pairs]
        valid = len(set(given_keys)) == len(given_keys) and all(
            (key == "customer" and len(value) <= 100 and "\x00" not in value)
            or (key == "status" and value in ("placed", "cancelled"))
            for key, value in pairs
        )
        if not valid:
            assert response.status_code == 400, where
            return
        assert response.status_code == 200, where
        wanted = dict(pairs)
        expected = [
            order["id"]
            for order in placed
            if order["customer"] == wanted.get("customer", order["customer"])
            and order["status"] == wanted.get("status", order["status"])
        ]
        assert sorted(order["id"] for order in response.get_json()) == expected, where

    run()


def test_sql_and_operator_text_is_stored_and_read_back_verbatim(
    command_client, query_client, pipeline, settings, cases
):
    from cqrs_demo.connections import write_engine

    written: dict[int, dict] = {}

    def remember(answer: dict) -> None:
        written[answer["id"]] = answer

    # The fixed cases: every SQL-looking text as name, sku, description, and in an order.
    for n, text in enumerate(SQL_TEXT):
        product = _create(command_client, text, text[:56] + f" #{n}", description=text * 3)
        assert (product["name"], product["sku"], product["description"]) == (text, text[:56] + f" #{n}", text * 3)
        remember(product)
    first = next(iter(written.values()))
    patched = command_client.patch(
        f"/api/products/{first['id']}", json={"description": SQL_TEXT[1]}, headers={"If-Match": '"1"'}
    )
    assert patched.status_code == 200 and patched.get_json()["description"] == SQL_TEXT[1]
    remember(patched.get_json())
    order = command_client.post(
        "/api/orders", json={"customer": SQL_TEXT[6], "lines": [{"sku": first["sku"], "quantity": 2}]}
    )
    assert order.status_code == 201, order.get_data(as_text=True)
    assert order.get_json()["customer"] == SQL_TEXT[6] and order.get_json()["lines"][0]["sku"] == first["sku"]
    # the order took stock: one more product version for the read model to reach
    written[first["id"]]["version"] = order.get_json()["product_versions"][str(first["id"])]

    # The generated cases: SQL and operator fragments glued together, as name, sku and description.
    pieces = st.sampled_from(SQL_TEXT + OPERATOR_KEYS + ["'", '"', ";", "--", "/*", "*/", "\\", "%", "$", "{", "}"])
    texts = st.lists(pieces, min_size=1, max_size=4).map(" ".join).map(lambda s: s[:90].strip()).filter(bool)
    counter = iter(range(10**6))

    @budget(100)
    @given(name=texts, description=texts)
    def run(name, description):
        cases("POST /api/products (sql text)")
        sku = f"{name[:50]} ~{next(counter)}"
        response = command_client.post(
            "/api/products",
            json={"name": name, "description": description, "price": Decimal("0.50"), "quantity": 1, "sku": sku},
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        answer = response.get_json()
        assert (answer["name"], answer["sku"], answer["description"]) == (name, sku, description)
        remember(answer)

    run()

    # The write side: the tables are all still there and hold exactly what was written.
    engine = write_engine(settings)
    try:
        inspector = sa.inspect(engine)
        for table in ("products", "orders", "order_lines", "outbox"):
            assert inspector.has_table(table, schema=settings.schema), f"table {table} is gone"
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f'SELECT id, name, sku, description FROM "{settings.schema}".products')).all()
    finally:
        engine.dispose()
    assert {row.id: (row.name, row.sku, row.description) for row in rows} == {
        id_: (p["name"], p["sku"], p["description"]) for id_, p in written.items()
    }

    # The read side: the projector stored the same text, and the query service returns it.
    for id_, product in written.items():
        _read_settled(query_client, f"/api/products/{id_}", product["version"])
    listed = query_client.get("/api/products", query_string={"limit": 1000})
    assert listed.status_code == 200
    assert {p["id"]: (p["name"], p["sku"], p["description"]) for p in listed.get_json()} == {
        id_: (p["name"], p["sku"], p["description"]) for id_, p in written.items()
    }
    # and searching for the SQL text finds it as text
    for text in SQL_TEXT[:5]:
        found = query_client.get("/api/products", query_string={"q": text, "limit": 1000})
        assert found.status_code == 200
        assert {p["id"] for p in found.get_json()} == {
            id_ for id_, p in written.items() if text.lower() in p["name"].lower()
        }
