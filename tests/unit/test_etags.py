"""Entity tags and If-Match (RFC 9110 8.8.3 and 13.1.1), without any server."""

from __future__ import annotations

import re

import pytest

from cqrs_demo.errors import InvalidParameter
from cqrs_demo.etags import ETAG_PATTERN, IF_MATCH_PATTERN, IfMatch, etag, if_match


def test_an_etag_is_the_version_quoted_and_strong():
    assert etag(3) == '"3"'
    assert re.fullmatch(ETAG_PATTERN, etag(2**31 - 1))


def test_no_header_is_no_precondition():
    assert if_match(None) is None


@pytest.mark.parametrize("header", ["*", " * ", "\t*"])
def test_star_matches_any_current_version(header):
    precondition = if_match(header)
    assert precondition.versions is None
    assert precondition.matches(1) and precondition.matches(2**31 - 1)


@pytest.mark.parametrize(
    "header, versions",
    [
        ('"3"', {3}),
        ('"2", "3"', {2, 3}),
        ('"2","3"', {2, 3}),
        (' "2" ,\t"3" ', {2, 3}),
        (', "2",, "3",', {2, 3}),  # empty list elements are ignored (RFC 9110 5.6.1.2)
        ("3", {3}),  # the seed's bare version
        ("003", {3}),
        ('3, "4"', {3, 4}),
    ],
)
def test_listed_versions_match(header, versions):
    precondition = if_match(header)
    assert precondition.versions == versions
    assert all(precondition.matches(v) for v in versions)
    assert not precondition.matches(max(versions) + 1)


@pytest.mark.parametrize(
    "header",
    ['W/"3"', '"03"', '"three"', '""', '"0"', '"a,3"', '"9999999999"', 'W/"3", W/"4"', '"\u00b3"'],
)
def test_tags_that_name_no_version_never_match(header):
    """Strong comparison: a weak tag, or any opaque tag but the exact `"3"`, does not match 3."""
    precondition = if_match(header)
    assert precondition.versions is not None
    assert not precondition.matches(3)


@pytest.mark.parametrize(
    "header",
    ["", " ", ",", "abc", "-1", "1.0", "+1", "1e3", "12345678901", '"1" "2"', '"', "W/", 'W/3', '"3 "', '"a"b"',
     '*, "1"', "**", '"1"\x00', "\u00b2", '"\x7f"', "'1'"],
)
def test_malformed_headers_are_a_400_naming_if_match(header):
    with pytest.raises(InvalidParameter) as caught:
        if_match(header)
    assert caught.value.status == 400
    assert "If-Match" in caught.value.details["fields"]
    assert repr(header) in caught.value.message


@pytest.mark.parametrize(
    "header", ["*", '"3"', '"2", "3"', "3", 'W/"3"', '"three"', "", "abc", "1.0", '"1" "2"', ", \"1\",", "12345678901"]
)
def test_the_documented_pattern_is_the_parser(header):
    """The document's pattern for If-Match accepts exactly the headers the service parses."""
    documented = re.search(IfMatch.model_json_schema()["properties"]["If-Match"]["anyOf"][0]["pattern"], header)
    try:
        if_match(header)
        parsed = True
    except InvalidParameter:
        parsed = False
    assert bool(documented) == parsed
