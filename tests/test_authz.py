"""Authorization over every route that changes anything (issue 3, "Authorization").

The route list comes from the app itself (`create_app(settings).routes`): a new POST, PUT,
PATCH or DELETE route fails `test_every_mutating_route_is_covered` until it is added to
`TOKEN_ROUTES` (and so checked for 401 without a token) or, with a reason, to `PUBLIC`.
Then, with another user's token: nobody publishes, deletes or uploads into (direct PUT, tus
HEAD/PATCH/DELETE, a re-aimed signed URL) someone else's video, or reads a private video or
its media. Every refusal is paired with the owner doing the same thing successfully, so a
route that is merely broken cannot pass for a route that refuses.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.core.services import make_storage
from tests.support.api import api_client, auth, make_settings, register, seed_video

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TUS = {"Tus-Resumable": "1.0.0"}
UPLOAD_BYTES = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000
DENIED = (403, 404)  # 404 when the route does not reveal that the video exists


@dataclass(frozen=True)
class Call:
    """How to call one route without being refused for anything but authentication."""

    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


# (method, path template without converters) → a well-formed request for it.
TOKEN_ROUTES: dict[tuple[str, str], Call] = {
    ("POST", "/v1/auth/logout"): Call(),
    ("POST", "/v1/videos/upload-url"): Call(
        json={"file_size_bytes": len(UPLOAD_BYTES), "content_type": "video/mp4"}
    ),
    ("PUT", "/v1/videos/{video_id}/file"): Call(
        content=UPLOAD_BYTES, headers={"Content-Type": "video/mp4"}
    ),
    ("POST", "/v1/uploads/tus"): Call(
        headers={
            **TUS,
            "Upload-Length": str(len(UPLOAD_BYTES)),
            "Upload-Metadata": "filetype " + base64.b64encode(b"video/mp4").decode(),
        }
    ),
    ("HEAD", "/v1/uploads/tus/{video_id}"): Call(headers=TUS),
    ("PATCH", "/v1/uploads/tus/{video_id}"): Call(
        content=UPLOAD_BYTES[:100],
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    ),
    ("DELETE", "/v1/uploads/tus/{video_id}"): Call(headers=TUS),
    ("POST", "/v1/videos/{video_id}/publish"): Call(json={"caption": "x", "privacy": "public"}),
    ("DELETE", "/v1/videos/{video_id}"): Call(),
    ("POST", "/v1/videos/{video_id}/like"): Call(),
    ("DELETE", "/v1/videos/{video_id}/like"): Call(),
    ("POST", "/v1/users/{user_id}/follow"): Call(),
    ("DELETE", "/v1/users/{user_id}/follow"): Call(),
    ("POST", "/v1/videos/{video_id}/comments"): Call(json={"body": "hello"}),
    ("POST", "/v1/events"): Call(
        json={"events": [{"event_id": "e1", "video_id": "v_x", "kind": "play", "value": 0}]}
    ),
    # Issue 5: reports, appeals and moderator decisions (403 for non-moderators is tested in
    # tests/test_moderation_api.py).
    ("POST", "/v1/videos/{video_id}/report"): Call(json={"reason": "spam"}),
    ("POST", "/v1/videos/{video_id}/appeal"): Call(json={"reason": "please look again"}),
    ("POST", "/v1/moderation/{video_id}/decision"): Call(json={"decision": "approve"}),
}

# Mutating routes that take no bearer token, and what protects them instead.
PUBLIC: dict[tuple[str, str], str] = {
    ("POST", "/v1/auth/register"): "creates the account the token will belong to",
    ("POST", "/v1/auth/login"): "exchanges a password for a token",
    ("PUT", "/v1/uploads/{video_id}"): "the signed upload URL: its signature is the credential",
}


def normalize(path: str) -> str:
    """`/v1/videos/{video_id:str}` → `/v1/videos/{video_id}`."""
    return re.sub(r"\{(\w+):[^}]+\}", r"{\1}", path)


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(make_settings(tmp_path))
    return {
        (method, normalize(route.path))
        for route in app.routes
        for method in getattr(route, "methods", ())
    }


def test_every_mutating_route_is_covered(tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    mutating = {(m, p) for m, p in routes if m in MUTATING}
    uncovered = mutating - set(TOKEN_ROUTES) - set(PUBLIC)
    assert not uncovered, f"add these routes to TOKEN_ROUTES or PUBLIC: {sorted(uncovered)}"
    stale = (set(TOKEN_ROUTES) | set(PUBLIC)) - routes
    assert not stale, f"the table names routes the app does not have: {sorted(stale)}"


# -- a shared world: two users, A's videos in several states ------------------------------------
@dataclass
class World:
    client: TestClient[Any]
    a_id: str
    a_token: str
    b_id: str
    b_token: str
    awaiting: str  # A's video waiting for its file (upload-url)
    tus_upload: str  # A's tus upload, nothing received yet
    private: str  # A's published private video, with media in storage
    public: str  # A's published public video, the same media
    settings: Any


def _seed_media(settings: Any, video_id: str, render_id: str) -> None:
    storage = make_storage(settings)
    prefix = f"media/{video_id}/{render_id}"
    storage.put_bytes(f"{prefix}/master.m3u8", b"#EXTM3U\n#EXT-X-VERSION:7\n")
    storage.put_bytes(f"{prefix}/poster.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")


def _ticket(client: TestClient[Any], token: str) -> Any:
    response = client.post(
        "/v1/videos/upload-url",
        json={"file_size_bytes": len(UPLOAD_BYTES), "content_type": "video/mp4"},
        headers=auth(token),
    )
    assert response.status_code == 201, response.text
    return response.json()


def _tus_create(client: TestClient[Any], token: str) -> str:
    call = TOKEN_ROUTES[("POST", "/v1/uploads/tus")]
    response = client.post("/v1/uploads/tus", headers={**call.headers, **auth(token)})
    assert response.status_code == 201, response.text
    return response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = tmp_path_factory.mktemp("authz")
    with api_client(data_dir) as client:
        settings = client.app.state.ctx.settings
        a_id, a_token = register(client, "alice_authz")
        b_id, b_token = register(client, "bob_authz")
        awaiting = _ticket(client, a_token)["video_id"]
        tus_upload = _tus_create(client, a_token)
        private = seed_video(settings, a_id, privacy="private", render_id="r_priv")
        public = seed_video(settings, a_id, privacy="public", render_id="r_pub")
        _seed_media(settings, private, "r_priv")
        _seed_media(settings, public, "r_pub")
        yield World(
            client, a_id, a_token, b_id, b_token, awaiting, tus_upload, private, public, settings
        )


def _send(world: World, method: str, path: str, call: Call, headers: dict[str, str]) -> Any:
    url = path.format(video_id=world.public, user_id=world.a_id)
    return world.client.request(
        method, url, json=call.json, content=call.content, headers={**call.headers, **headers}
    )


def _assert_error(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    if response.request.method != "HEAD":
        error = response.json()["error"]
        assert error["code"] and error["message"], response.text


@pytest.mark.parametrize("route", sorted(TOKEN_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_no_token_is_401(world: World, route: tuple[str, str]) -> None:
    method, path = route
    _assert_error(_send(world, method, path, TOKEN_ROUTES[route], {}), 401)


@pytest.mark.parametrize("route", sorted(TOKEN_ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_unknown_token_is_401(world: World, route: tuple[str, str]) -> None:
    method, path = route
    bogus = {"Authorization": "Bearer rf_not-a-token-anyone-was-given"}
    _assert_error(_send(world, method, path, TOKEN_ROUTES[route], bogus), 401)


def _status(world: World, video_id: str) -> str:
    response = world.client.get(f"/v1/videos/{video_id}", headers=auth(world.a_token))
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def test_cannot_upload_publish_or_delete_another_users_video(world: World) -> None:
    c, vid, b = world.client, world.awaiting, auth(world.b_token)
    put = TOKEN_ROUTES[("PUT", "/v1/videos/{video_id}/file")]
    response = c.put(f"/v1/videos/{vid}/file", content=put.content, headers={**put.headers, **b})
    assert response.status_code in DENIED, response.text
    assert _status(world, vid) == "awaiting_upload"
    # The owner can: the slot was open and the route works.
    response = c.put(
        f"/v1/videos/{vid}/file",
        content=put.content,
        headers={**put.headers, **auth(world.a_token)},
    )
    assert response.status_code == 200, response.text
    assert _status(world, vid) == "uploaded"

    response = c.post(f"/v1/videos/{vid}/publish", json={"caption": "mine"}, headers=b)
    assert response.status_code in DENIED, response.text
    assert _status(world, vid) == "uploaded"

    response = c.delete(f"/v1/videos/{vid}", headers=b)
    assert response.status_code in DENIED, response.text
    assert _status(world, vid) == "uploaded"
    history = c.get(f"/v1/videos/{vid}/history", headers=b)
    assert history.status_code in DENIED, history.text


def test_cannot_touch_another_users_tus_upload(world: World) -> None:
    c, vid, b = world.client, world.tus_upload, auth(world.b_token)
    url = f"/v1/uploads/tus/{vid}"
    patch = TOKEN_ROUTES[("PATCH", "/v1/uploads/tus/{video_id}")]
    assert c.head(url, headers={**TUS, **b}).status_code in DENIED
    response = c.patch(url, content=patch.content, headers={**patch.headers, **b})
    assert response.status_code in DENIED, response.text
    response = c.delete(url, headers={**TUS, **b})
    assert response.status_code in DENIED, response.text
    # Nothing moved: the owner still sees offset 0, and can append.
    a = auth(world.a_token)
    head = c.head(url, headers={**TUS, **a})
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    response = c.patch(url, content=patch.content, headers={**patch.headers, **a})
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(len(patch.content or b""))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_signed_upload_url_only_opens_its_own_video(world: World) -> None:
    c = world.client
    a_ticket = _ticket(c, world.a_token)
    b_ticket = _ticket(c, world.b_token)
    headers = {**a_ticket["headers"]}
    url = a_ticket["upload_url"]
    signature = dict(parse_qsl(urlsplit(url).query))["signature"]
    tampered = _with_query(url, signature=("0" if signature[0] != "0" else "1") + signature[1:])
    assert c.put(tampered, content=UPLOAD_BYTES, headers=headers).status_code in (401, 403)
    later = _with_query(url, expires=str(int(dict(parse_qsl(urlsplit(url).query))["expires"]) + 1))
    assert c.put(later, content=UPLOAD_BYTES, headers=headers).status_code in (401, 403)
    # A's signature aimed at B's video.
    re_aimed = url.replace(a_ticket["video_id"], b_ticket["video_id"])
    assert c.put(re_aimed, content=UPLOAD_BYTES, headers=headers).status_code in (401, 403)
    b_view = c.get(f"/v1/videos/{b_ticket['video_id']}", headers=auth(world.b_token))
    assert b_view.json()["status"] == "awaiting_upload"
    # Untouched, it works.
    response = c.put(url, content=UPLOAD_BYTES, headers=headers)
    assert response.status_code == 200, response.text


def test_private_video_and_its_media_stay_private(world: World) -> None:
    c = world.client
    owner_view = c.get(f"/v1/videos/{world.private}", headers=auth(world.a_token))
    assert owner_view.status_code == 200, owner_view.text
    assert owner_view.json()["privacy"] == "private"
    assert c.get(f"/v1/videos/{world.private}").status_code in DENIED
    assert c.get(f"/v1/videos/{world.private}", headers=auth(world.b_token)).status_code in DENIED
    liked = c.post(f"/v1/videos/{world.private}/like", headers=auth(world.b_token))
    assert liked.status_code in DENIED, liked.text

    public_view = c.get(f"/v1/videos/{world.public}").json()
    for name in ("master.m3u8", "poster.jpg"):
        public_url = f"{world.settings.media_url}/{world.public}/r_pub/{name}"
        private_url = f"{world.settings.media_url}/{world.private}/r_priv/{name}"
        assert c.get(public_url).status_code == 200  # the same files are served when public
        for headers in ({}, auth(world.b_token), auth(world.a_token)):
            assert c.get(private_url, headers=headers).status_code in DENIED
            assert c.head(private_url, headers=headers).status_code in DENIED
    assert public_view["hls_url"] == f"{world.settings.media_url}/{world.public}/r_pub/master.m3u8"


def test_owner_can_delete_and_then_it_is_gone(world: World) -> None:
    c, a = world.client, auth(world.a_token)
    vid = _ticket(c, world.a_token)["video_id"]
    assert c.delete(f"/v1/videos/{vid}", headers=auth(world.b_token)).status_code in DENIED
    assert c.delete(f"/v1/videos/{vid}", headers=a).status_code == 204
    assert c.get(f"/v1/videos/{vid}", headers=a).status_code == 404
