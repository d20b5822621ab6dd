"""Entity tags for versioned documents, and If-Match by RFC 9110 (sections 8.8.3 and 13.1.1).

A product's or an order's entity tag is its version, quoted and strong: `ETag: "3"`. A change
sent with `If-Match` is made only if the header matches the product as it is:

- `*` matches any current product;
- otherwise the header is a comma-separated list of entity tags (`"3"`, `"2", "3"`), and it
  matches when one of them equals the current tag by strong comparison: a weak tag (`W/"3"`)
  never matches, nor does a tag that names no version (`"three"`);
- a bare version (`3`), the form the seed's clients send, counts as its quoted tag.

A well-formed header that does not match is a 412; one that is not a list of entity tags is a
400 that says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, Field

from cqrs_demo.errors import InvalidParameter

_OWS = r"[ \t]*"
# entity-tag = [ weak ] DQUOTE *etagc DQUOTE; etagc = "!" / %x23-7E / obs-text (RFC 9110 8.8.3)
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
_BARE_VERSION = r"[0-9]{1,9}"  # the seed's form; longer is no version at all
_ELEMENT = rf"(?:{_ENTITY_TAG}|{_BARE_VERSION})"
# A list may hold empty elements, which a recipient must ignore (RFC 9110 5.6.1.2).
_LIST = rf"(?:,{_OWS})*{_ELEMENT}(?:{_OWS},(?:{_OWS},)*{_OWS}{_ELEMENT})*(?:{_OWS},)*"
IF_MATCH_PATTERN = rf"^{_OWS}(?:\*|{_LIST}){_OWS}$"

_IF_MATCH = re.compile(IF_MATCH_PATTERN)
_ELEMENTS = re.compile(_ELEMENT)
_STRONG_VERSION = re.compile(r'"([1-9][0-9]{0,8})"')  # a version is a PostgreSQL integer


ETAG_PATTERN = r'^"[1-9][0-9]*"$'  # what `etag` writes


def etag(version: int) -> str:
    """The strong entity tag of a document's version."""
    return f'"{version}"'


class IfMatch(BaseModel):
    """The precondition of a change to a product (RFC 9110 13.1.1)."""

    if_match: str | None = Field(
        None,
        alias="If-Match",
        pattern=IF_MATCH_PATTERN,
        description='`*`, or entity tags such as `"3"` or `"2", "3"` (strong comparison: a weak `W/"3"` '
        "never matches); a bare version `3` counts as `\"3\"`. 412 when none matches the product's current "
        "ETag, 400 when the header is not a list of entity tags.",
    )


@dataclass(frozen=True)
class Precondition:
    """What an If-Match header asks for: any version (`*`), or one of `versions`."""

    header: str
    versions: frozenset[int] | None  # None: `*`, any current version

    def matches(self, version: int) -> bool:
        return self.versions is None or version in self.versions


def if_match(header: str | None) -> Precondition | None:
    """The precondition an If-Match header states; None when there is none to check."""
    if header is None:
        return None
    if not _IF_MATCH.match(header):
        raise InvalidParameter(
            f'If-Match must be `*` or a list of entity tags such as "3" (or a bare version 3), got {header!r}',
            fields={"If-Match": 'expected `*` or entity tags such as "3", "4"'},
        )
    if header.strip(" \t") == "*":
        return Precondition(header, None)
    versions = set()
    for element in _ELEMENTS.findall(header):
        if element.isdigit():
            versions.add(int(element))
        elif strong := _STRONG_VERSION.fullmatch(element):
            versions.add(int(strong.group(1)))
    return Precondition(header, frozenset(versions))
