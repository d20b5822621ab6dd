"""Reading an Idempotency-Key, and telling one request from another."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cqrs_demo.errors import InvalidIdempotencyKey
from cqrs_demo.write.idempotency import Answer, fingerprint, parse_key


@pytest.mark.parametrize("values, key", [
    ([], None),
    (['"8e03978e-40d5-43e8-bc93-6894a57f9324"'], "8e03978e-40d5-43e8-bc93-6894a57f9324"),
    (["8e03978e-40d5-43e8-bc93-6894a57f9324"], "8e03978e-40d5-43e8-bc93-6894a57f9324"),  # a bare token
    (['"with space, and comma"'], "with space, and comma"),
    (['"a \\"quoted\\" \\\\ word"'], 'a "quoted" \\ word'),
    (['  "padded"  '], "padded"),
    (['"' + "k" * 255 + '"'], "k" * 255),
])
def test_keys(values, key):
    assert parse_key(values) == key


@pytest.mark.parametrize("values, says", [
    (['""'], "1 to 255 characters, got 0"),
    (['"' + "k" * 256 + '"'], "1 to 255 characters, got 256"),
    (['"unterminated'], "must be a quoted string"),
    (['"bad \\n escape"'], "must be a quoted string"),
    (["two words"], "must be a quoted string"),
    (['"ключ"'], "must be a quoted string"),
    (['"tab\there"'], "must be a quoted string"),
    ([""], "must be a quoted string"),
    (['"a", "b"'], "send one Idempotency-Key header, not 2"),  # two headers, as WSGI joins them
    (['"a"', '"b"'], "send one Idempotency-Key header, not 2"),
])
def test_malformed_keys_are_refused_saying_why(values, says):
    with pytest.raises(InvalidIdempotencyKey, match=says) as refused:
        parse_key(values)
    assert refused.value.status == 400 and refused.value.details == {"parameter": "Idempotency-Key"}


def test_the_fingerprint_is_the_request_not_its_spelling():
    body = {"customer": "ada", "lines": [{"sku": "A", "quantity": 2}], "total": Decimal("1.50")}
    same = {"total": Decimal("1.50"), "lines": [{"quantity": 2, "sku": "A"}], "customer": "ada"}
    assert fingerprint("POST", "/api/orders", body) == fingerprint("post", "/api/orders", same)
    assert fingerprint("POST", "/api/orders", body) != fingerprint("POST", "/api/products", body)
    assert fingerprint("POST", "/api/orders", body) != fingerprint("POST", "/api/orders", {**body, "customer": "bo"})
    assert fingerprint("POST", "/api/orders/1/cancel", None) != fingerprint("POST", "/api/orders/2/cancel", None)


def test_an_answer_keeps_only_the_headers_a_replay_needs():
    answer = Answer.of(201, b"{}", {"Content-Type": "application/json", "Location": "/api/orders/7",
                                    "Content-Length": "2", "Date": "now"})
    assert answer.headers == {"Content-Type": "application/json", "Location": "/api/orders/7"}
