"""HTTP semantics for serving one stored object (RFC 9110), independent of any framework.

The Litestar route stats the object, calls `plan_response` with the request's method and
headers, sends `Plan.status` and `Plan.headers`, and streams `Plan.body` (an inclusive
byte range, or None for no body) from `Storage.open_range`.

What is implemented:

- Conditional requests (RFC 9110 §13), evaluated in the order of §13.2.2: If-Match →
  If-Unmodified-Since → If-None-Match → If-Modified-Since → If-Range. A failed If-Match /
  If-Unmodified-Since gives 412; a matching If-None-Match (weak comparison, §13.1.2) or an
  unmodified If-Modified-Since gives 304, which takes precedence over Range.
- Range requests (RFC 9110 §14) for GET only, one byte range per request: several ranges
  are answered with the whole representation (200), as a server MAY ignore Range (§14.2);
  this avoids multipart/byteranges, which no media player needs.
- CORS for players on other origins (Fetch standard): any origin, no credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from typing import Literal

from cdn.storage import ObjectInfo

IMMUTABLE = "public, max-age=31536000, immutable"
MANIFEST = "public, max-age=2, stale-while-revalidate=10"
NO_STORE = "no-store"

_IMMUTABLE_SUFFIXES = (".m4s", ".mp4", ".jpg", ".vtt")
_MANIFEST_SUFFIXES = (".m3u8", ".mpd")

ALLOWED_METHODS = ("GET", "HEAD", "OPTIONS")
ALLOWED_REQUEST_HEADERS = ("Range", "If-None-Match", "If-Modified-Since", "If-Range")
EXPOSED_HEADERS = "Content-Length, Content-Range, ETag"
PREFLIGHT_MAX_AGE = 86400

_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_ENTITY_TAG = re.compile(r'(?:\s*,)*\s*(W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')


def cache_control_for(key: str) -> str:
    """The Cache-Control value (RFC 9111 §5.2.2) served with `key`.

    - Segments (``.m4s``), init segments and progressive files (``.mp4``), posters and
      storyboards (``.jpg``, ``.vtt``): ``public, max-age=31536000, immutable`` (RFC 8246).
      Their keys live under a per-rendition prefix (``media/v_…/r_…/``): a re-transcode
      writes new keys, so a stored byte never changes under a key.
    - Manifests (``.m3u8``, ``.mpd``): ``public, max-age=2, stale-while-revalidate=10``
      (RFC 5861), short so that a re-published or live playlist is picked up quickly.
    - Everything else (``report.json``, uploads, unknown types): ``no-store``. Reports carry
      internal detail (encoder settings, timings) and may be rewritten; nothing that is not
      plainly a media asset should sit in shared caches.
    """
    name = key.rsplit("/", 1)[-1].lower()
    if name.endswith(_IMMUTABLE_SUFFIXES):
        return IMMUTABLE
    if name.endswith(_MANIFEST_SUFFIXES):
        return MANIFEST
    return NO_STORE


# ---------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class RangeResult:
    """The outcome of a Range header against a representation of `size` bytes.

    kind "full": no usable Range (absent, malformed, unknown unit, several ranges): 200.
    kind "partial": serve bytes ``[start, end]`` (inclusive) with 206.
    kind "unsatisfiable": 416 with ``Content-Range: bytes */size`` (RFC 9110 §15.5.17).
    """

    kind: Literal["full", "partial", "unsatisfiable"]
    start: int = 0
    end: int = -1

    @property
    def length(self) -> int:
        return self.end - self.start + 1 if self.kind == "partial" else 0


FULL = RangeResult("full")
UNSATISFIABLE = RangeResult("unsatisfiable")


def parse_range(header: str | None, size: int) -> RangeResult:
    """Interpret a Range header field (RFC 9110 §14.2) for a representation of `size` bytes.

    Syntax (§14.1.2): ``bytes=first-last``, ``bytes=first-`` and suffix ``bytes=-n``; the
    unit is case-insensitive (§14.1). Semantics (§14.1.1):

    - ``last`` past the end is clamped to ``size - 1``;
    - ``first >= size`` is unsatisfiable, and so is a zero suffix (``bytes=-0``);
    - a suffix longer than the representation selects all of it (206 over the whole).

    Ignored (the whole representation, 200): no header, any other unit (§14.2 "MUST ignore"),
    malformed syntax including ``last < first`` (an invalid range-set, §14.1.1), and more
    than one range (a server MAY ignore Range, §14.2; it keeps us out of multipart).
    An empty representation cannot be partially served (``bytes 0--1/0`` does not exist):
    any ``first-`` range on it is unsatisfiable, a suffix range gets the (empty) 200.
    """
    if header is None:
        return FULL
    unit, sep, range_set = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return FULL
    specs = [spec.strip() for spec in range_set.split(",") if spec.strip()]
    if len(specs) != 1:
        return FULL
    match = _RANGE_SPEC.fullmatch(specs[0])
    if match is None or (not match[1] and not match[2]):
        return FULL
    try:
        first = int(match[1]) if match[1] else None
        last = int(match[2]) if match[2] else None
    except ValueError:  # more digits than int() accepts: malformed for us
        return FULL
    if first is None:
        return _suffix_range(last or 0, size)
    return _int_range(first, last, size)


def _suffix_range(suffix: int, size: int) -> RangeResult:
    """``bytes=-suffix``: the last `suffix` bytes (RFC 9110 §14.1.2)."""
    if suffix == 0:
        return UNSATISFIABLE
    if size == 0:
        return FULL
    return RangeResult("partial", max(0, size - suffix), size - 1)


def _int_range(first: int, last: int | None, size: int) -> RangeResult:
    """``bytes=first-last`` / ``bytes=first-`` (RFC 9110 §14.1.2)."""
    if last is not None and last < first:
        return FULL
    if first >= size:
        return UNSATISFIABLE
    end = size - 1 if last is None else min(last, size - 1)
    return RangeResult("partial", first, end)


# --------------------------------------------------------------- validators


def parse_entity_tags(value: str) -> list[str] | None:
    """The entity-tags of an If-Match / If-None-Match list (RFC 9110 §8.8.3), or None.

    Each tag keeps its ``W/`` prefix and quotes. None: the value is not a valid list.
    """
    tags: list[str] = []
    pos = 0
    value = value.strip()
    while pos < len(value):
        match = _ENTITY_TAG.match(value, pos)
        if match is None:
            return None
        tags.append((match[1] or "") + match[2])
        pos = match.end()
    return tags or None


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def weak_match(a: str, b: str) -> bool:
    """Weak comparison (RFC 9110 §8.8.3.2): opaque-tags equal, W/ flags ignored."""
    return _opaque(a) == _opaque(b)


def strong_match(a: str, b: str) -> bool:
    """Strong comparison (RFC 9110 §8.8.3.2): neither weak, opaque-tags equal."""
    return not a.startswith("W/") and not b.startswith("W/") and a == b


def _list_matches(value: str, etag: str, *, strong: bool) -> bool | None:
    """Whether an If-Match / If-None-Match value matches `etag`; None if it is invalid."""
    if value.strip() == "*":
        return True  # the representation exists (§13.1.1, §13.1.2)
    tags = parse_entity_tags(value)
    if tags is None:
        return None
    compare = strong_match if strong else weak_match
    return any(compare(tag, etag) for tag in tags)


def parse_http_date(value: str | None) -> float | None:
    """Unix seconds of an HTTP-date (RFC 9110 §5.6.7), or None if it is not one.

    Accepts IMF-fixdate and the obsolete RFC 850 and asctime forms (GMT when no zone is
    written); a list of dates (more than one comma) is not a date (§13.1.3, §13.1.4).
    """
    if not value or value.count(",") > 1:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def http_date(timestamp: float) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7) of unix seconds."""
    return formatdate(int(timestamp), usegmt=True)


# ---------------------------------------------------------------- responses


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``[start, end]`` of the object to send (inclusive, as `Storage.open_range`)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True)
class Plan:
    """What to answer: status, header fields, and which bytes to send (None: no body)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: ByteRange | None = None


def cors_headers() -> dict[str, str]:
    """CORS response headers for simple requests: any origin, no credentials."""
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Timing-Allow-Origin": "*",
    }


def cors_preflight_headers(request_headers: Mapping[str, str]) -> dict[str, str]:
    """Headers answering a CORS preflight (OPTIONS, Fetch standard §3.2.3); send with 204.

    Allows GET, HEAD, OPTIONS with Range, If-None-Match, If-Modified-Since and If-Range
    from any origin. When the preflight asks for another method
    (Access-Control-Request-Method), Access-Control-Allow-Methods is left out so that the
    browser refuses the actual request.
    """
    lowered = _lower(request_headers)
    requested = lowered.get("access-control-request-method", "").strip().upper()
    headers = {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Headers": ", ".join(ALLOWED_REQUEST_HEADERS),
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE),
        "Allow": ", ".join(ALLOWED_METHODS),
    }
    if not requested or requested in ALLOWED_METHODS:
        headers["Access-Control-Allow-Methods"] = ", ".join(ALLOWED_METHODS)
    return headers


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _validator_headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": info.etag,
        "Last-Modified": http_date(info.last_modified),
        "Cache-Control": cache_control_for(info.key),
    }


def _precondition_status(headers: dict[str, str], info: ObjectInfo) -> int | None:
    """412, 304 or None (proceed), per the evaluation order of RFC 9110 §13.2.2."""
    modified = int(info.last_modified)
    if "if-match" in headers:
        # §13.1.1: strong comparison; an invalid list cannot match.
        if not _list_matches(headers["if-match"], info.etag, strong=True):
            return 412
    elif "if-unmodified-since" in headers:
        # §13.1.4: ignored when not a valid HTTP-date.
        since = parse_http_date(headers["if-unmodified-since"])
        if since is not None and modified > since:
            return 412
    if "if-none-match" in headers:
        # §13.1.2: weak comparison; an invalid value is treated as not matching.
        if _list_matches(headers["if-none-match"], info.etag, strong=False):
            return 304
    elif "if-modified-since" in headers:
        # §13.1.3: only without If-None-Match; ignored when not a valid HTTP-date.
        since = parse_http_date(headers["if-modified-since"])
        if since is not None and modified <= since:
            return 304
    return None


def _if_range_allows(headers: dict[str, str], info: ObjectInfo) -> bool:
    """Whether Range applies given If-Range (RFC 9110 §13.1.5); True without If-Range.

    An entity-tag must match strongly; an HTTP-date must equal Last-Modified exactly.
    """
    value = headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        tags = parse_entity_tags(value)
        return tags is not None and len(tags) == 1 and strong_match(tags[0], info.etag)
    date = parse_http_date(value)
    return date is not None and int(date) == int(info.last_modified)


def plan_response(method: str, headers: Mapping[str, str], info: ObjectInfo) -> Plan:
    """Status, header fields and byte range answering `method` on `info` (RFC 9110).

    - GET/HEAD only (anything else: 405 with Allow, §15.5.6; OPTIONS goes to
      `cors_preflight_headers`).
    - Preconditions first (§13.2.2): 412 (§15.5.13) or 304 (§15.4.5). A 304 carries the
      fields a 200 would have that guide caches (ETag, Cache-Control), plus CORS, and no
      content fields.
    - Range (§14.2) for GET only, ignored for HEAD ("GET is the only method for which range
      handling is defined"), and ignored when If-Range does not match (§13.1.5).
      206 (§15.3.7) carries Content-Range ``bytes first-last/size`` (§14.4); 416
      (§15.5.17) carries ``Content-Range: bytes */size`` and no body.
    - HEAD gets the same fields as the GET would (§9.3.2) and no body.
    """
    method = method.upper()
    lowered = _lower(headers)
    base = {**cors_headers(), "Accept-Ranges": "bytes"}
    if method not in ("GET", "HEAD"):
        return Plan(405, {**base, "Allow": ", ".join(ALLOWED_METHODS), "Content-Length": "0"})

    status = _precondition_status(lowered, info)
    if status == 304:
        cache = {"ETag": info.etag, "Cache-Control": cache_control_for(info.key)}
        return Plan(304, {**base, **cache})
    if status == 412:
        return Plan(412, {**base, "Content-Length": "0"})

    use_range = method == "GET" and _if_range_allows(lowered, info)
    result = parse_range(lowered.get("range"), info.size) if use_range else FULL
    if result.kind == "unsatisfiable":
        fields = {"Content-Range": f"bytes */{info.size}", "Content-Length": "0"}
        return Plan(416, {**base, **fields})

    fields = {**base, **_validator_headers(info), "Content-Type": info.content_type}
    if result.kind == "partial":
        fields["Content-Range"] = f"bytes {result.start}-{result.end}/{info.size}"
        fields["Content-Length"] = str(result.length)
        return Plan(206, fields, ByteRange(result.start, result.end))
    fields["Content-Length"] = str(info.size)
    body = ByteRange(0, info.size - 1) if method == "GET" and info.size > 0 else None
    return Plan(200, fields, body)
