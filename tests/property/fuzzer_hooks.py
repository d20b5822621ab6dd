"""What the fuzzer is told that the OpenAPI document cannot say in JSON Schema.

Loaded by `schemathesis run` (SCHEMATHESIS_HOOKS, set by test_fuzzer.py). It only narrows which
requests are generated as *valid*; it excuses no answer.
"""

from __future__ import annotations

import itertools

import schemathesis

_KEYS = itertools.count(1)  # deterministic, like the rest of the run


@schemathesis.hook
def filter_case(context, case) -> bool:
    """An order names each product on one line only (PlaceOrder's description says so).

    JSON Schema cannot state "unique by sku or by product_id" across array items, so a generated
    order with two lines for one product is valid by the document, and refused (422) by the
    service, rightly. Such an order is still generated as an invalid one in negative mode.
    """
    if context.operation is None or context.operation.label != "POST /api/orders":
        return True
    if case.meta is None or not case.meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return True
    lines = case.body.get("lines")
    if not isinstance(lines, list):
        return True
    named = [
        ("sku", line.get("sku")) if line.get("sku") is not None else ("id", line.get("product_id"))
        for line in lines
        if isinstance(line, dict)
    ]
    return len(named) == len(set(named))


@schemathesis.hook
def map_case(context, case):
    """An Idempotency-Key names one request: each valid request gets a key of its own.

    The document can give a key's syntax, not that a client must never reuse it for a different
    request; a generated valid key is often the same string on many requests, which the service
    rightly refuses (422 idempotency_key_reused, the draft's answer). Invalid keys, in negative
    mode, are left as generated. Replays of one key are tested in tests/integration/test_idempotency.py.
    """
    headers = case.headers or {}
    if "Idempotency-Key" in headers and case.meta is not None and case.meta.generation.mode.is_positive:
        headers["Idempotency-Key"] = f'"fuzz-{next(_KEYS)}"'
    return case
