"""Idempotent commands: a retried POST gets the first answer again, never a second effect.

A client whose POST timed out cannot tell whether it was applied. With an `Idempotency-Key`
header (IETF httpapi draft "The Idempotency-Key HTTP Header Field") it can simply send the same
request again. The service remembers each key with the request it came with and the answer it
got, for `idempotency_key_hours`, and decides, inside the command's own transaction:

- a key no request is using and none has used: run the command, and store its answer in the
  same transaction as its effect. A crash commits both or neither, so a retry can never find an
  effect without its answer (and run it twice), nor an answer without its effect;
- the same key and the same request (method, path, and body, compared as canonical JSON): the
  stored answer, status, body and headers, marked `Idempotent-Replayed: true`. Nothing runs;
- the same key with a different request: 422 `idempotency_key_reused` (the draft's status);
- the same key while its first request is still running: 409 `idempotency_key_in_use` (the
  draft's), seen at once through a transaction-level advisory lock on the key, not by waiting.

An answer is stored whether the command succeeded or was refused by the domain (a 409 for
missing stock, a 404): the draft wants the retry to see the result of the first attempt,
success or error. The refused command's effects are rolled back to a savepoint first. A request
refused before anything runs (malformed JSON, invalid fields, a malformed key) is not
remembered: there is nothing to repeat. Neither is an unexpected server error: the whole
transaction rolls back, key included, and a retry runs the command again.

A key is a Structured Field string (`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, the draft's
syntax); a bare token is accepted too, as most clients send one. At most 255 printable ASCII
characters; more than one `Idempotency-Key` header is refused.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping

import simplejson
import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Engine

from cqrs_demo.errors import IdempotencyKeyInUse, IdempotencyKeyReused, InvalidIdempotencyKey
from cqrs_demo.write.schema import idempotency_keys

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
STORED_HEADERS = ("Content-Type", "Location", "ETag")
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_TOKEN = re.compile(r"[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+")  # visible ASCII but `"`, `,` and `\`
ERRORS = (InvalidIdempotencyKey, IdempotencyKeyInUse, IdempotencyKeyReused)


class IdempotencyKeyHeader(BaseModel):
    """The request header, as the OpenAPI documents describe it."""

    idempotency_key: str | None = Field(
        None, alias=HEADER, min_length=1, max_length=2 * MAX_KEY_LENGTH + 2,
        pattern=r'^(?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])+"|[\x21\x23-\x2b\x2d-\x5b\x5d-\x7e]+)$',
        description=(
            "makes a retry safe (IETF draft \"The Idempotency-Key HTTP Header Field\"): a quoted string of 1 to "
            f"{MAX_KEY_LENGTH} printable ASCII characters (a UUID is recommended), or a bare token. The first "
            "request with a key runs and its answer is stored with its effect; the same request again gets that "
            "answer, with `Idempotent-Replayed: true`, and changes nothing. Keys are remembered for "
            "CQRS_IDEMPOTENCY_KEY_HOURS (24 h by default)."),
    )


_MEMBER = re.compile(r'\s*("(?:[^"\\]|\\.)*"?|[^,]*)\s*(?:,|$)')


def _members(value: str) -> list[str]:
    """A field value split at the commas outside quoted strings: how repeated headers arrive, joined."""
    members, at = [], 0
    while at < len(value):
        match = _MEMBER.match(value, at)
        members.append(match.group(1))
        at = match.end()
    return members or [""]


def parse_key(values: list[str]) -> str | None:
    """The key carried by the request's `Idempotency-Key` header values; None without one."""
    if not values:
        return None
    members = [member for value in values for member in _members(value)]
    if len(members) > 1:
        raise InvalidIdempotencyKey(f"send one {HEADER} header, not {len(members)}", parameter=HEADER)
    raw = members[0].strip()
    if (match := _SF_STRING.fullmatch(raw)) is not None:
        key = re.sub(r"\\(.)", r"\1", match.group(1))
    elif _TOKEN.fullmatch(raw):
        key = raw
    else:
        raise InvalidIdempotencyKey(
            f"{HEADER} must be a quoted string of printable ASCII, like \"8e03978e-40d5-43e8-bc93-6894a57f9324\","
            f" got {raw[:80]!r}", parameter=HEADER)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidIdempotencyKey(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters, got {len(key)}",
                                    parameter=HEADER)
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    """Which request a key was used for: its method, path and body as canonical JSON, hashed."""
    canonical = simplejson.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"),
                                 use_decimal=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class KeyedRequest:
    key: str
    fingerprint: str


@dataclass
class Answer:
    """A response as it is stored and replayed."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, status: int, body: bytes, headers: Mapping[str, str]) -> "Answer":
        return cls(status, body, {name: headers[name] for name in STORED_HEADERS if name in headers})


def claim(conn: Connection, request: KeyedRequest, lock_class: int) -> Answer | None:
    """Take the key for this transaction: the stored answer for a repeated request, None for a new one.

    Raises IdempotencyKeyInUse if another transaction holds the key (its request still runs),
    IdempotencyKeyReused if the key was used for a different request. An expired key is
    forgotten here, so the request runs as a new one.
    """
    held = conn.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(lock_class, sa.func.hashtext(request.key))))
    if not held:
        raise IdempotencyKeyInUse(
            f"a request with {HEADER} {request.key!r} is still being processed; retry once it has answered",
            parameter=HEADER)
    row = conn.execute(
        sa.select(idempotency_keys, (idempotency_keys.c.expires_at <= sa.func.now()).label("expired"))
        .where(idempotency_keys.c.key == request.key)
    ).one_or_none()
    if row is None:
        return None
    if row.expired:
        conn.execute(idempotency_keys.delete().where(idempotency_keys.c.key == request.key))
        return None
    if row.fingerprint != request.fingerprint:
        raise IdempotencyKeyReused(
            f"{HEADER} {request.key!r} was already used for a different request; a retry must repeat the "
            f"first request exactly (same method, path and body), a new request needs a new key",
            parameter=HEADER)
    return Answer(row.status, bytes(row.body), dict(row.headers))


def remember(conn: Connection, request: KeyedRequest, answer: Answer, keep_for: timedelta) -> None:
    """Store the answer under the key, in the transaction that holds the command's effect."""
    conn.execute(idempotency_keys.insert().values(
        key=request.key, fingerprint=request.fingerprint, status=answer.status, body=answer.body,
        headers=answer.headers, created_at=sa.func.now(),
        expires_at=sa.func.now() + sa.literal(keep_for, sa.Interval())))


def purge_expired(engine: Engine) -> int:
    """Delete every expired key; how many."""
    with engine.begin() as conn:
        return conn.execute(idempotency_keys.delete().where(idempotency_keys.c.expires_at <= sa.func.now())).rowcount
