"""Accounts API on the real embedded app: register, login, logout, tokens, profiles, grids."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from api.core.db import now_ms, sync_engine
from api.core.tables import tokens, users, videos
from tests.support.api import api_client, auth, make_settings, register, seed_video


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


def _rows(tmp_path: Path, query: Any) -> list[Any]:
    engine = sync_engine(make_settings(tmp_path))
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).all())
    finally:
        engine.dispose()


def test_register_returns_user_token_and_expiry(tmp_path: Path) -> None:
    with api_client(tmp_path, token_ttl_seconds=3600) as client:
        before = now_ms()
        response = client.post(
            "/v1/auth/register",
            json={"handle": "  Maya.Lens_01 ", "password": "long enough", "display_name": "Maya"},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"user", "token", "expires_at"}
        user = body["user"]
        assert user["handle"] == "maya.lens_01"
        assert user["display_name"] == "Maya"
        assert user["id"].startswith("u_")
        assert (user["follower_count"], user["following_count"], user["video_count"]) == (0, 0, 0)
        assert before + 3600_000 <= body["expires_at"] <= now_ms() + 3600_000
        assert len(body["token"]) >= 40
        # The token works at once.
        me = client.get(f"/v1/users/{user['id']}", headers=auth(body["token"]))
        assert me.status_code == 200 and me.json() == user


def test_display_name_defaults_to_handle_and_drops_control_characters(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        plain = client.post("/v1/auth/register", json={"handle": "plainname", "password": "x" * 8})
        assert plain.json()["user"]["display_name"] == "plainname"
        odd = client.post(
            "/v1/auth/register",
            json={"handle": "oddname", "password": "x" * 8, "display_name": " Zoé\u0007\u202e "},
        )
        assert odd.status_code == 201
        assert odd.json()["user"]["display_name"] == "Zoé"
        # A NUL is not dropped but refused, as in every field (issue 16, item 1).
        nul = client.post(
            "/v1/auth/register",
            json={"handle": "nulname", "password": "x" * 8, "display_name": "Zoé\u0000"},
        )
        assert "NUL" in _error(nul, 422, "validation_failed")["message"]
        long = client.post(
            "/v1/auth/register",
            json={"handle": "longname", "password": "x" * 8, "display_name": "n" * 65},
        )
        _error(long, 422, "validation_failed")


@pytest.mark.parametrize(
    "handle",
    ["ab", "a" * 33, "has-dash", "has space", "émile", "", "semi;colon", "UPPER!"],
)
def test_bad_handles_are_422(tmp_path: Path, handle: str) -> None:
    with api_client(tmp_path) as client:
        response = client.post("/v1/auth/register", json={"handle": handle, "password": "x" * 12})
        assert "handle" in _error(response, 422, "validation_failed")["message"]


@pytest.mark.parametrize("handle", ["abc", "a" * 32, "a.b_c.9", "UPPER_case"])
def test_good_handles_are_accepted(tmp_path: Path, handle: str) -> None:
    with api_client(tmp_path) as client:
        response = client.post("/v1/auth/register", json={"handle": handle, "password": "x" * 8})
        assert response.status_code == 201, response.text
        assert response.json()["user"]["handle"] == handle.lower()


@pytest.mark.parametrize("password", ["", "1234567", "x" * 1025])
def test_bad_passwords_are_422(tmp_path: Path, password: str) -> None:
    with api_client(tmp_path) as client:
        response = client.post("/v1/auth/register", json={"handle": "pwuser", "password": password})
        assert "password" in _error(response, 422, "validation_failed")["message"]


def test_malformed_bodies_use_the_error_shape(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        missing = client.post("/v1/auth/register", json={"handle": "nopass"})
        _error(missing, 422, "validation_failed")
        garbage = client.post(
            "/v1/auth/register", content=b"{not json", headers={"content-type": "application/json"}
        )
        _error(garbage, 400, "bad_request")


def test_duplicate_handle_is_409_case_insensitively(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        register(client, "samehandle")
        again = client.post("/v1/auth/register", json={"handle": "SameHandle", "password": "x" * 9})
        _error(again, 409, "conflict")
        assert len(_rows(tmp_path, select(users.c.id).where(users.c.handle == "samehandle"))) == 1


def test_login_returns_a_new_working_token(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        user_id, first = register(client, "loginuser", password="s3cret words")
        response = client.post(
            "/v1/auth/login", json={"handle": "LoginUser", "password": "s3cret words"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"user", "token", "expires_at"}
        assert body["user"]["id"] == user_id
        assert body["token"] != first
        follow_target, _ = register(client, "target1")
        ok = client.post(f"/v1/users/{follow_target}/follow", headers=auth(body["token"]))
        assert ok.status_code == 200


def test_wrong_password_and_unknown_user_look_the_same(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        register(client, "realuser", password="right password")
        wrong = client.post("/v1/auth/login", json={"handle": "realuser", "password": "wrong one!"})
        unknown = client.post(
            "/v1/auth/login", json={"handle": "ghostuser", "password": "right password"}
        )
        too_long = client.post(
            "/v1/auth/login", json={"handle": "realuser", "password": "right password" * 100}
        )
        assert _error(wrong, 401, "unauthorized") == _error(unknown, 401, "unauthorized")
        assert _error(too_long, 401, "unauthorized") == _error(wrong, 401, "unauthorized")


def test_password_hash_is_argon2id_and_tokens_are_stored_hashed(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        user_id, token = register(client, "hashuser", password="plain text pw")
        login = client.post(
            "/v1/auth/login", json={"handle": "hashuser", "password": "plain text pw"}
        )
        second = login.json()["token"]
    (stored_hash,) = _rows(tmp_path, select(users.c.password_hash).where(users.c.id == user_id))[0]
    assert stored_hash.startswith("$argon2id$")
    assert "plain text pw" not in stored_hash
    stored_tokens = {
        row.token_hash for row in _rows(tmp_path, select(tokens).where(tokens.c.user_id == user_id))
    }
    assert stored_tokens == {hashlib.sha256(t.encode()).hexdigest() for t in (token, second)}
    # Neither the raw tokens nor the password appear anywhere in the database files.
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("reelforge.db*"))
    assert raw, "database files not found"
    for secret in (token, second, "plain text pw"):
        assert secret.encode() not in raw


def test_expired_token_is_401(tmp_path: Path) -> None:
    with api_client(tmp_path, token_ttl_seconds=1) as client:
        target, _ = register(client, "target2")
        _, token = register(client, "shortlived")
        assert client.post(f"/v1/users/{target}/follow", headers=auth(token)).status_code == 200
        time.sleep(1.2)
        late = client.post(f"/v1/users/{target}/follow", headers=auth(token))
        _error(late, 401, "unauthorized")
        # Reads with an expired token are refused too, not silently anonymous.
        _error(client.get(f"/v1/users/{target}/videos", headers=auth(token)), 401, "unauthorized")


def test_logout_revokes_only_the_presented_token(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        target, _ = register(client, "target3")
        user_id, token = register(client, "twodevices", password="pass words")
        other = client.post(
            "/v1/auth/login", json={"handle": "twodevices", "password": "pass words"}
        ).json()["token"]
        out = client.post("/v1/auth/logout", headers=auth(token))
        assert out.status_code == 204 and out.content == b""
        _error(client.post(f"/v1/users/{target}/follow", headers=auth(token)), 401, "unauthorized")
        assert client.post(f"/v1/users/{target}/follow", headers=auth(other)).status_code == 200
        _error(client.post("/v1/auth/logout"), 401, "unauthorized")
    remaining = _rows(tmp_path, select(tokens.c.token_hash).where(tokens.c.user_id == user_id))
    assert [r.token_hash for r in remaining] == [hashlib.sha256(other.encode()).hexdigest()]


def test_get_user_and_unknown_user(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        user_id, _ = register(client, "profile1")
        response = client.get(f"/v1/users/{user_id}")
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == user_id and body["handle"] == "profile1"
        assert "password_hash" not in body
        _error(client.get("/v1/users/u_doesnotexist000"), 404, "not_found")
        _error(client.get("/v1/users/u_doesnotexist000/videos"), 404, "not_found")


def _page_through(
    client: Any, path: str, limit: int, headers: dict[str, str], cursor: str | None = None
) -> list[str]:
    ids: list[str] = []
    for _ in range(100):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = client.get(path, params=params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["videos"]) <= limit
        ids.extend(v["id"] for v in body["videos"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids
        assert len(body["videos"]) == limit
    raise AssertionError("paging never ended")


def test_grid_pages_newest_first_without_duplicates_or_gaps(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with api_client(tmp_path) as client:
        owner, _ = register(client, "gridowner")
        base = now_ms() - 10_000_000
        # 45 videos; every third shares its timestamp with the previous one (id breaks ties).
        stamps = [base + (i - i % 3 // 2) * 1000 for i in range(45)]
        seeded = [seed_video(settings, owner, published_at=t) for t in stamps]
        expected = [vid for _, vid in sorted(zip(stamps, seeded, strict=True), reverse=True)]
        for limit in (1, 7, 10, 20, 45, 50):
            got = _page_through(client, f"/v1/users/{owner}/videos", limit, {})
            assert got == expected, f"limit={limit}"
        first = client.get(f"/v1/users/{owner}/videos").json()
        assert len(first["videos"]) == 20 and first["next_cursor"]
        assert first["videos"][0]["author"]["id"] == owner
        # A video published after the first page was read does not shift the next pages.
        newest = seed_video(settings, owner, published_at=now_ms())
        rest = _page_through(client, f"/v1/users/{owner}/videos", 10, {}, first["next_cursor"])
        assert [v["id"] for v in first["videos"]] + rest == expected
        assert _page_through(client, f"/v1/users/{owner}/videos", 50, {}) == [newest, *expected]


@pytest.mark.parametrize("query", ["limit=0", "limit=51", "limit=abc"])
def test_grid_rejects_bad_limits(tmp_path: Path, query: str) -> None:
    with api_client(tmp_path) as client:
        owner, _ = register(client, "limitowner")
        _error(client.get(f"/v1/users/{owner}/videos?{query}"), 422, "validation_failed")


@pytest.mark.parametrize("cursor", ["garbage!", "bm90IGpzb24", "WzEsMiwzXQ", "WyJ4IiwxXQ"])
def test_grid_rejects_forged_cursors(tmp_path: Path, cursor: str) -> None:
    with api_client(tmp_path) as client:
        owner, _ = register(client, "cursorowner")
        _error(
            client.get(f"/v1/users/{owner}/videos", params={"cursor": cursor}), 400, "bad_request"
        )


def test_grid_visibility_owner_versus_others(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with api_client(tmp_path) as client:
        owner, owner_token = register(client, "visowner")
        _, other_token = register(client, "visother")
        t = now_ms() - 1_000_000
        public = seed_video(settings, owner, published_at=t + 1)
        unlisted = seed_video(settings, owner, privacy="unlisted", published_at=t + 2)
        private = seed_video(settings, owner, privacy="private", published_at=t + 3)
        processing = seed_video(settings, owner, status="processing", published_at=t + 4)
        waiting = seed_video(settings, owner, status="awaiting_upload", published_at=t + 5)
        rejected = seed_video(settings, owner, status="rejected", published_at=t + 6)
        deleted = seed_video(settings, owner, status="deleted", published_at=t + 7)
        path = f"/v1/users/{owner}/videos"
        assert _page_through(client, path, 50, {}) == [public]
        assert _page_through(client, path, 50, auth(other_token)) == [public]
        mine = _page_through(client, path, 2, auth(owner_token))
        assert mine == [rejected, waiting, processing, private, unlisted, public]
        assert deleted not in mine
        mine_full = client.get(path, headers=auth(owner_token)).json()["videos"]
        by_id = {v["id"]: v for v in mine_full}
        assert by_id[public]["hls_url"].endswith(f"/{public}/r_seed/master.m3u8")
        assert by_id[processing]["hls_url"] is None
    # Sanity: the row states are what the test meant.
    states = dict(_rows(tmp_path, select(videos.c.id, videos.c.status)))
    assert states[deleted] == "deleted" and states[processing] == "processing"


def test_tokens_of_a_user_expire_server_side(tmp_path: Path) -> None:
    """Expiry is checked against the stored expires_at, not a client claim."""
    settings = make_settings(tmp_path)
    with api_client(tmp_path) as client:
        target, _ = register(client, "target4")
        user_id, token = register(client, "expiring")
        engine = sync_engine(settings)
        with engine.begin() as conn:
            conn.execute(
                update(tokens).where(tokens.c.user_id == user_id).values(expires_at=now_ms() - 1)
            )
        engine.dispose()
        _error(client.post(f"/v1/users/{target}/follow", headers=auth(token)), 401, "unauthorized")
