"""Hostile input answers a 4xx in the API's error body, never a 500 (issue 16, item 1).

Every case runs on the embedded SQLite database and on a fresh database in the real local
PostgreSQL server (tests/support/pg.py): PostgreSQL refuses a NUL character in text and a
number outside 64 bits, SQLite refuses the number too, and both used to answer 500.
- a NUL character (U+0000) anywhere in the request's text: a JSON body's string (caption,
  report details, comment, handle), a path segment, a query parameter, a cursor's id;
- a cursor whose number is outside the signed 64-bit range;
- a JSON body nested far deeper than any of ours (msgspec's decoder recursed until Python's
  recursion limit).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from api.core.db import sync_engine
from api.core.paging import BAD_CURSOR
from api.core.tables import comments, reports, users, videos
from tests.support.api import api_client, auth, make_settings, register, seed_video
from tests.support.pg import fresh_database

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """One app per backend: an owner with an uploaded and a published video, and a viewer."""
    overrides = (
        {"database_url": request.getfixturevalue("pg_url")} if request.param != "sqlite" else {}
    )
    data_dir = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    with api_client(data_dir, **overrides) as client:
        settings = make_settings(data_dir, **overrides)
        owner, owner_token = register(client)
        _, viewer_token = register(client)
        yield {
            "client": client,
            "settings": settings,
            "owner": owner,
            "owner_token": owner_token,
            "viewer_token": viewer_token,
            "uploaded": seed_video(settings, owner, status="uploaded"),
            "published": seed_video(settings, owner),
        }


def cursor_of(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def assert_error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message
    return message


def count(world: dict[str, Any], query: Any) -> int:
    engine = sync_engine(world["settings"])
    try:
        with engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------- NUL


def test_a_nul_in_a_caption_is_refused_and_nothing_changes(world: dict[str, Any]) -> None:
    video = world["uploaded"]
    response = world["client"].post(
        f"/v1/videos/{video}/publish",
        json={"caption": "a\u0000b"},
        headers=auth(world["owner_token"]),
    )
    message = assert_error(response, 422, "validation_failed")
    assert "NUL" in message
    engine = sync_engine(world["settings"])
    with engine.connect() as conn:
        row = conn.execute(select(videos.c.status, videos.c.caption).where(videos.c.id == video))
        assert tuple(row.one()) == ("uploaded", "")
    engine.dispose()


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("report", {"reason": "spam", "details": "look\u0000here"}),
        ("comments", {"body": "nice\u0000"}),
        ("register", {"handle": "nul\u0000user", "password": "long enough 1"}),
        ("login", {"handle": "nul\u0000user", "password": "long enough 1"}),
        # in a key, in a nested value, and after escaped backslashes (`\\\u0000` is a NUL)
        ("comments", {"body": "ok", "x\u0000": 1}),
        ("comments", {"body": "\\\u0000"}),
    ],
)
def test_a_nul_in_any_json_string_is_refused(
    world: dict[str, Any], route: str, body: dict[str, Any]
) -> None:
    video = world["published"]
    path = {
        "report": f"/v1/videos/{video}/report",
        "comments": f"/v1/videos/{video}/comments",
        "register": "/v1/auth/register",
        "login": "/v1/auth/login",
    }[route]
    response = world["client"].post(path, json=body, headers=auth(world["viewer_token"]))
    assert "NUL" in assert_error(response, 422, "validation_failed")
    assert count(world, select(func.count()).where(reports.c.video_id == video)) == 0
    assert count(world, select(func.count()).where(comments.c.video_id == video)) == 0


def test_text_that_only_looks_like_a_nul_escape_is_kept(world: dict[str, Any]) -> None:
    """`\\u0000` in JSON (an escaped backslash, then `u0000`) is six plain characters."""
    video = seed_video(world["settings"], world["owner"])
    response = world["client"].post(
        f"/v1/videos/{video}/comments",
        content=b'{"body": "path C:\\\\u0000"}',
        headers={**auth(world["viewer_token"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["body"] == "path C:\\u0000"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/videos/v_%00",
        "/v1/users/u_%00",
        "/v1/users/u_%00/videos",
        "/v1/videos/v_x%00y/comments",
    ],
)
def test_a_nul_in_the_path_is_a_404(world: dict[str, Any], path: str) -> None:
    response = world["client"].get(path, headers=auth(world["viewer_token"]))
    assert_error(response, 404, "not_found")


@pytest.mark.parametrize("query", ["cursor=%00", "limit=1%00", "type=for_you%00"])
def test_a_nul_in_the_query_is_refused(world: dict[str, Any], query: str) -> None:
    owner = world["owner"]
    for path in (f"/v1/users/{owner}/videos", "/v1/feed"):
        response = world["client"].get(f"{path}?{query}", headers=auth(world["viewer_token"]))
        assert response.status_code in (400, 422), response.text
        assert response.json()["error"]["code"] in ("bad_request", "validation_failed")


# ---------------------------------------------------------------------------- cursors

BAD_CURSORS = [
    '[1,"a\\u0000b"]',  # a NUL in the id
    '[9223372036854775808,"x"]',  # 2**63
    "[" + "1" + "0" * 100 + ',"x"]',  # 10**100
    '[-9223372036854775809,"x"]',  # -2**63 - 1
]


@pytest.mark.parametrize("raw", BAD_CURSORS)
def test_a_cursor_outside_what_we_hand_out_is_a_400(world: dict[str, Any], raw: str) -> None:
    cursor = cursor_of(raw)
    for path in (
        f"/v1/videos/{world['published']}/comments",
        f"/v1/users/{world['owner']}/videos",
    ):
        response = world["client"].get(path, params={"cursor": cursor})
        assert assert_error(response, 400, "bad_request") == BAD_CURSOR, path


def test_the_edges_of_the_64_bit_range_still_page(world: dict[str, Any]) -> None:
    """The control: the largest and smallest 64-bit numbers are cursors like any other."""
    for raw in ('[9223372036854775807,"x"]', '[-9223372036854775808,"x"]'):
        response = world["client"].get(
            f"/v1/users/{world['owner']}/videos", params={"cursor": cursor_of(raw)}
        )
        assert response.status_code == 200, response.text


# ------------------------------------------------------------------------ deep JSON


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_json_nested_100000_deep_is_a_400(world: dict[str, Any], opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    deep = opener * 100_000 + b"1" + closer * 100_000
    video = world["published"]
    for path in (f"/v1/videos/{video}/comments", "/v1/auth/login", f"/v1/videos/{video}/report"):
        response = world["client"].post(
            path,
            content=deep,
            headers={**auth(world["viewer_token"]), "Content-Type": "application/json"},
        )
        assert "nested" in assert_error(response, 400, "bad_request"), path
    assert count(world, select(func.count()).select_from(users)) == 2
