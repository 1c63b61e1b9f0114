"""Table tests for the origin's HTTP semantics (RFC 9110 ranges, validators, CORS)."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from cdn.origin import (
    IMMUTABLE,
    MANIFEST,
    NO_STORE,
    ByteRange,
    RangeResult,
    cache_control_for,
    cors_preflight_headers,
    parse_entity_tags,
    parse_http_date,
    parse_range,
    plan_response,
)
from cdn.storage import ObjectInfo

MODIFIED = 1_700_000_000.75  # fractional: HTTP dates have whole seconds
INFO = ObjectInfo(
    key="media/v_abc/r_1/v720/00001.m4s",
    size=1000,
    etag='"abc123"',
    last_modified=MODIFIED,
    content_type="video/iso.segment",
)
LAST_MODIFIED = formatdate(int(MODIFIED), usegmt=True)
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag",
    "Timing-Allow-Origin": "*",
}


def full() -> RangeResult:
    return RangeResult("full")


def part(start: int, end: int) -> RangeResult:
    return RangeResult("partial", start, end)


UNSAT = RangeResult("unsatisfiable")


# ------------------------------------------------------------------ cache control


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("media/v/r/v720/00001.m4s", IMMUTABLE),
        ("media/v/r/audio/init.mp4", IMMUTABLE),
        ("media/v/r/poster.jpg", IMMUTABLE),
        ("media/v/r/storyboard.jpg", IMMUTABLE),
        ("media/v/r/storyboard.vtt", IMMUTABLE),
        ("media/v/r/master.m3u8", MANIFEST),
        ("media/v/r/v720/index.m3u8", MANIFEST),
        ("media/v/r/manifest.mpd", MANIFEST),
        ("media/v/r/MANIFEST.MPD", MANIFEST),
        ("media/v/r/report.json", NO_STORE),
        ("uploads/v/000000000000", NO_STORE),
        ("media/v/r/notes.txt", NO_STORE),
    ],
)
def test_cache_control_for(key: str, expected: str) -> None:
    assert cache_control_for(key) == expected


def test_cache_control_values() -> None:
    assert IMMUTABLE == "public, max-age=31536000, immutable"
    assert MANIFEST == "public, max-age=2, stale-while-revalidate=10"
    assert NO_STORE == "no-store"


# ------------------------------------------------------------------ parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 1000, full()),
        ("bytes=0-9", 1000, part(0, 9)),
        ("bytes=0-0", 1000, part(0, 0)),
        ("bytes=5-", 1000, part(5, 999)),
        ("bytes=-5", 1000, part(995, 999)),
        ("bytes=-5000", 1000, part(0, 999)),  # suffix longer than the representation: all
        ("bytes=990-2000", 1000, part(990, 999)),  # end past size clamps
        ("bytes=999-999", 1000, part(999, 999)),
        ("bytes=0-999", 1000, part(0, 999)),
        ("BYTES=1-2", 1000, part(1, 2)),  # the unit is case-insensitive
        (" bytes=1-2 ", 1000, part(1, 2)),
        ("bytes= 1-2", 1000, part(1, 2)),  # OWS around list elements
        ("bytes=1-2,", 1000, part(1, 2)),  # empty list elements are allowed
        ("bytes=1000-", 1000, UNSAT),  # start past the end
        ("bytes=1000-1005", 1000, UNSAT),
        ("bytes=5000-", 1000, UNSAT),
        ("bytes=-0", 1000, UNSAT),
        ("bytes=0-", 0, UNSAT),
        ("bytes=-5", 0, full()),
        ("bytes=0-1,5-6", 1000, full()),  # several ranges: the whole representation
        ("bytes=0-1, -5", 1000, full()),
        ("bytes=9-5", 1000, full()),  # last < first: invalid, ignored
        ("bytes=", 1000, full()),
        ("bytes=-", 1000, full()),
        ("bytes=a-b", 1000, full()),
        ("bytes=1 - 2", 1000, full()),
        ("bytes=+1-2", 1000, full()),
        ("bytes=-1-2", 1000, full()),
        ("bytes=0x10-", 1000, full()),
        ("bytes=١-٢", 1000, full()),  # non-ASCII digits are not DIGIT
        ("bytes 0-9", 1000, full()),
        ("items=0-9", 1000, full()),  # unknown unit: ignored
        ("", 1000, full()),
        ("bytes=" + "9" * 5000 + "-", 1000, full()),  # absurd numbers: malformed for us
    ],
)
def test_parse_range(header: str | None, size: int, expected: RangeResult) -> None:
    assert parse_range(header, size) == expected


def test_range_length() -> None:
    assert part(10, 19).length == 10
    assert full().length == 0
    assert ByteRange(5, 5).length == 1


# ------------------------------------------------------------------ validators


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        ('"a"', ['"a"']),
        ('W/"a"', ['W/"a"']),
        ('"a", W/"b" ,"c"', ['"a"', 'W/"b"', '"c"']),
        ('"a,b", "c"', ['"a,b"', '"c"']),  # commas inside the quotes belong to the tag
        ('"", "x"', ['""', '"x"']),
        ('"a", , "b"', ['"a"', '"b"']),
        ("a", None),
        ('"a" "b"', None),
        ('w/"a"', None),  # the weak indicator is case-sensitive
        ('"a', None),
        ("", None),
    ],
)
def test_parse_entity_tags(value: str, tags: list[str] | None) -> None:
    assert parse_entity_tags(value) == tags


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0),
        ("Sun Nov  6 08:49:37 1994", 784111777.0),
        ("yesterday", None),
        ("", None),
        (None, None),
        ("Sun, 06 Nov 1994 08:49:37 GMT, Mon, 07 Nov 1994 08:49:37 GMT", None),
    ],
)
def test_parse_http_date(value: str | None, expected: float | None) -> None:
    assert parse_http_date(value) == expected


# ------------------------------------------------------------------ plan_response


def test_plain_get() -> None:
    plan = plan_response("GET", {}, INFO)
    assert plan.status == 200
    assert plan.body == ByteRange(0, 999)
    assert plan.headers == {
        **CORS,
        "Accept-Ranges": "bytes",
        "Content-Type": "video/iso.segment",
        "Content-Length": "1000",
        "ETag": '"abc123"',
        "Last-Modified": LAST_MODIFIED,
        "Cache-Control": IMMUTABLE,
    }


def test_head_has_get_headers_and_no_body() -> None:
    get = plan_response("GET", {}, INFO)
    head = plan_response("HEAD", {}, INFO)
    assert head.status == 200
    assert head.body is None
    assert head.headers == get.headers


def test_head_ignores_range() -> None:
    plan = plan_response("HEAD", {"Range": "bytes=0-9"}, INFO)
    assert (plan.status, plan.body) == (200, None)
    assert plan.headers["Content-Length"] == "1000"
    assert "Content-Range" not in plan.headers


@pytest.mark.parametrize(
    ("range_header", "status", "body", "content_range", "length"),
    [
        ("bytes=0-9", 206, ByteRange(0, 9), "bytes 0-9/1000", "10"),
        ("bytes=-5", 206, ByteRange(995, 999), "bytes 995-999/1000", "5"),
        ("bytes=5-", 206, ByteRange(5, 999), "bytes 5-999/1000", "995"),
        ("bytes=990-5000", 206, ByteRange(990, 999), "bytes 990-999/1000", "10"),
        ("bytes=0-999", 206, ByteRange(0, 999), "bytes 0-999/1000", "1000"),
        ("bytes=1000-", 416, None, "bytes */1000", "0"),
        ("bytes=4000-5000", 416, None, "bytes */1000", "0"),
        ("bytes=-0", 416, None, "bytes */1000", "0"),
        ("bytes=garbage", 200, ByteRange(0, 999), None, "1000"),
        ("bytes=0-1,4-5", 200, ByteRange(0, 999), None, "1000"),
        ("pages=1-2", 200, ByteRange(0, 999), None, "1000"),
    ],
)
def test_ranges(
    range_header: str, status: int, body: ByteRange | None, content_range: str | None, length: str
) -> None:
    plan = plan_response("GET", {"Range": range_header}, INFO)
    assert plan.status == status
    assert plan.body == body
    assert plan.headers.get("Content-Range") == content_range
    assert plan.headers["Content-Length"] == length
    assert plan.headers["Accept-Ranges"] == "bytes"
    assert plan.headers["Access-Control-Allow-Origin"] == "*"
    if status != 416:
        assert plan.headers["ETag"] == INFO.etag
        assert plan.headers["Content-Type"] == INFO.content_type


def test_header_names_are_case_insensitive() -> None:
    plan = plan_response("get", {"rAnGe": "bytes=0-9"}, INFO)
    assert (plan.status, plan.body) == (206, ByteRange(0, 9))


@pytest.mark.parametrize(
    "if_none_match",
    [
        '"abc123"',
        'W/"abc123"',  # weak comparison (RFC 9110 §8.8.3.2, §13.1.2)
        '"other", "abc123"',
        '"other",W/"abc123"',
        "*",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_if_none_match_gives_304(if_none_match: str, method: str) -> None:
    plan = plan_response(method, {"If-None-Match": if_none_match}, INFO)
    assert plan.status == 304
    assert plan.body is None
    assert plan.headers["ETag"] == INFO.etag
    assert plan.headers["Cache-Control"] == IMMUTABLE
    assert "Content-Length" not in plan.headers
    assert "Content-Type" not in plan.headers
    assert plan.headers["Access-Control-Allow-Origin"] == "*"


def test_if_none_match_takes_precedence_over_range() -> None:
    headers = {"If-None-Match": '"abc123"', "Range": "bytes=0-9"}
    plan = plan_response("GET", headers, INFO)
    assert (plan.status, plan.body) == (304, None)
    assert "Content-Range" not in plan.headers


def test_if_none_match_takes_precedence_over_unsatisfiable_range() -> None:
    plan = plan_response("GET", {"If-None-Match": "*", "Range": "bytes=5000-"}, INFO)
    assert plan.status == 304


@pytest.mark.parametrize("if_none_match", ['"other"', '"abc1234"', 'W/"ABC123"', "garbage"])
def test_if_none_match_mismatch_serves(if_none_match: str) -> None:
    plan = plan_response("GET", {"If-None-Match": if_none_match, "Range": "bytes=0-9"}, INFO)
    assert (plan.status, plan.body) == (206, ByteRange(0, 9))


@pytest.mark.parametrize(
    ("since", "status"),
    [
        (LAST_MODIFIED, 304),  # equal (to the second)
        (formatdate(MODIFIED + 3600, usegmt=True), 304),  # later
        (formatdate(MODIFIED - 1, usegmt=True), 200),  # earlier: modified since
        ("not a date", 200),  # invalid: ignored (RFC 9110 §13.1.3)
    ],
)
def test_if_modified_since(since: str, status: int) -> None:
    plan = plan_response("GET", {"If-Modified-Since": since}, INFO)
    assert plan.status == status
    assert plan.body == (None if status == 304 else ByteRange(0, 999))


def test_if_modified_since_ignored_with_if_none_match() -> None:
    headers = {"If-None-Match": '"other"', "If-Modified-Since": LAST_MODIFIED}
    assert plan_response("GET", headers, INFO).status == 200
    headers = {"If-None-Match": '"abc123"', "If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}
    assert plan_response("GET", headers, INFO).status == 304


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"If-Match": '"abc123"'}, 200),
        ({"If-Match": "*"}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-Match": 'W/"abc123"'}, 412),  # If-Match compares strongly
        ({"If-Match": "garbage"}, 412),
        ({"If-Unmodified-Since": LAST_MODIFIED}, 200),
        ({"If-Unmodified-Since": formatdate(MODIFIED - 10, usegmt=True)}, 412),
        ({"If-Unmodified-Since": "nonsense"}, 200),
        ({"If-Match": '"abc123"', "If-Unmodified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}, 200),
        ({"If-Match": '"nope"', "If-None-Match": '"abc123"'}, 412),  # If-Match first
    ],
)
def test_if_match_and_if_unmodified_since(headers: dict[str, str], status: int) -> None:
    plan = plan_response("GET", headers, INFO)
    assert plan.status == status
    assert (plan.body is None) == (status == 412)


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        ('"abc123"', 206),
        ('"changed"', 200),
        ('W/"abc123"', 200),  # If-Range needs a strong match
        (LAST_MODIFIED, 206),
        (formatdate(MODIFIED - 60, usegmt=True), 200),
        ("garbage", 200),
    ],
)
def test_if_range(if_range: str, status: int) -> None:
    plan = plan_response("GET", {"Range": "bytes=0-9", "If-Range": if_range}, INFO)
    assert plan.status == status
    assert plan.body == (ByteRange(0, 9) if status == 206 else ByteRange(0, 999))


def test_empty_object() -> None:
    empty = ObjectInfo("media/v/r/x.vtt", 0, '"e"', MODIFIED, "text/vtt")
    plan = plan_response("GET", {}, empty)
    assert (plan.status, plan.body, plan.headers["Content-Length"]) == (200, None, "0")
    assert plan_response("GET", {"Range": "bytes=0-"}, empty).status == 416
    assert plan_response("GET", {"Range": "bytes=-5"}, empty).status == 200


def test_manifest_cache_control_in_response() -> None:
    manifest = ObjectInfo(
        "media/v/r/master.m3u8", 10, '"m"', MODIFIED, "application/vnd.apple.mpegurl"
    )
    plan = plan_response("GET", {}, manifest)
    assert plan.headers["Cache-Control"] == MANIFEST
    assert plan.headers["Content-Type"] == "application/vnd.apple.mpegurl"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_are_not_allowed(method: str) -> None:
    plan = plan_response(method, {"Range": "bytes=0-9"}, INFO)
    assert plan.status == 405
    assert plan.body is None
    assert plan.headers["Allow"] == "GET, HEAD, OPTIONS"


# ------------------------------------------------------------------ CORS preflight


def test_cors_preflight() -> None:
    headers = cors_preflight_headers(
        {
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range, if-none-match",
        }
    )
    assert headers["Access-Control-Allow-Origin"] == "*"
    methods = {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "HEAD", "OPTIONS"}
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"range", "if-none-match"} <= allowed
    assert int(headers["Access-Control-Max-Age"]) > 0


def test_cors_preflight_for_a_write_method_is_not_allowed() -> None:
    headers = cors_preflight_headers({"access-control-request-method": "PUT"})
    assert "Access-Control-Allow-Methods" not in headers
    assert headers["Access-Control-Allow-Origin"] == "*"
