"""An HTTP client for the whole flow, as a phone app would drive the API (httpx + tuspy).

register → upload (signed/presigned URL, direct PUT, or tus 1.0) → publish → poll until the
video settles → play it: the master playlist at `hls_url` (RFC 8216 §4.3.4), one variant's
media playlist, its initialization section (§4.3.2.5 EXT-X-MAP) and first media segment →
like, follow, comment → both feeds. Every call checks its status and returns parsed JSON.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import m3u8

# Where a video stays once its job is done: in_review waits for a moderator, not for the job
# (a video a classifier held must not make a poll run into its deadline).
SETTLED = frozenset({"published", "in_review", "rejected", "failed"})


class FlowError(AssertionError):
    """The server answered something the flow did not expect (status and body included)."""


def _check(response: httpx.Response, *expected: int) -> Any:
    if response.status_code not in expected:
        raise FlowError(
            f"{response.request.method} {response.request.url} → {response.status_code}, "
            f"expected {expected}: {response.text[:600]}"
        )
    if not response.content:
        return None
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()
    return response.text


@dataclass
class Account:
    id: str
    handle: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Playback:
    """What one playback start fetched: the master playlist, a variant, its first segment."""

    master: m3u8.M3U8
    variant_uri: str
    media: m3u8.M3U8
    init_section: bytes
    segment: bytes
    segment_content_type: str


class Flow:
    """The API at `base_url`, driven over real HTTP."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Flow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- accounts ------------------------------------------------------------------------
    def register(
        self, handle: str | None = None, password: str = "a long pass phrase 7"
    ) -> Account:
        handle = handle or "u" + secrets.token_hex(5)
        body = _check(
            self.http.post("/v1/auth/register", json={"handle": handle, "password": password}),
            201,
        )
        return Account(body["user"]["id"], handle, body["token"])

    def user(self, user_id: str, viewer: Account | None = None) -> Any:
        return _check(self.http.get(f"/v1/users/{user_id}", headers=_h(viewer)), 200)

    # -- uploads -------------------------------------------------------------------------
    def upload_ticket(self, who: Account, path: Path, content_type: str = "video/mp4") -> Any:
        """`POST /v1/videos/upload-url` → {video_id, upload_url, method, headers, expires_at}."""
        request = {"file_size_bytes": path.stat().st_size, "content_type": content_type}
        return _check(
            self.http.post("/v1/videos/upload-url", json=request, headers=who.headers), 200, 201
        )

    def upload_signed(self, who: Account, path: Path, content_type: str = "video/mp4") -> str:
        """Upload through the URL the API hands out (presigned S3 PUT, or the API's own signed
        endpoint when embedded), with exactly the method and headers it says; no bearer token."""
        ticket = self.upload_ticket(who, path, content_type)
        url = urljoin(self.base_url + "/", ticket["upload_url"])
        headers = {**ticket.get("headers", {}), "Content-Length": str(path.stat().st_size)}
        response = httpx.request(
            ticket.get("method", "PUT"), url, content=path.read_bytes(), headers=headers,
            timeout=120,
        )  # fmt: skip
        _check(response, 200, 201, 204)
        return str(ticket["video_id"])

    def upload_direct(self, who: Account, path: Path, content_type: str = "video/mp4") -> str:
        """Reserve a video, then stream the file to `PUT /v1/videos/{id}/file` with the token."""
        ticket = self.upload_ticket(who, path, content_type)
        video_id = str(ticket["video_id"])
        self.put_file(who, video_id, path, content_type, expect=(200, 201, 204))
        return video_id

    def put_file(
        self,
        who: Account | None,
        video_id: str,
        path: Path,
        content_type: str = "video/mp4",
        expect: tuple[int, ...] = (200, 201, 204),
    ) -> httpx.Response:
        headers = {**_h(who), "Content-Type": content_type}
        with path.open("rb") as fh:
            response = self.http.put(
                f"/v1/videos/{video_id}/file", content=_chunks(fh), headers={
                    **headers, "Content-Length": str(path.stat().st_size)},
            )  # fmt: skip
        _check(response, *expect)
        return response

    def upload_tus(self, who: Account, path: Path, chunk_size: int = 256 * 1024) -> str:
        """tus 1.0 creation + PATCH in chunks (tuspy); the video id is the upload URL's last
        path segment."""
        from tusclient.client import TusClient

        client = TusClient(f"{self.base_url}/v1/uploads/tus", headers=who.headers)
        uploader = client.uploader(
            file_path=str(path),
            chunk_size=chunk_size,
            metadata={"filename": path.name, "filetype": "video/mp4"},
            retries=0,
        )
        uploader.upload()
        assert uploader.url, "tus creation gave no upload URL"
        return str(uploader.url).rstrip("/").rsplit("/", 1)[-1]

    # -- videos --------------------------------------------------------------------------
    def publish(
        self, who: Account, video_id: str, caption: str = "", privacy: str = "public"
    ) -> Any:
        body = _check(
            self.http.post(
                f"/v1/videos/{video_id}/publish",
                json={"caption": caption, "privacy": privacy},
                headers=who.headers,
            ),
            202,
        )
        return body

    def video(self, video_id: str, viewer: Account | None = None) -> Any:
        return _check(self.http.get(f"/v1/videos/{video_id}", headers=_h(viewer)), 200)

    def wait_status(
        self,
        video_id: str,
        viewer: Account,
        wanted: frozenset[str] | set[str] = SETTLED,
        deadline_s: float = 240.0,
        interval_s: float = 0.25,
    ) -> Any:
        """Poll `GET /v1/videos/{id}` until its status is one of `wanted`; the last body."""
        deadline = time.monotonic() + deadline_s
        seen: list[str] = []
        while True:
            body = self.video(video_id, viewer)
            if not seen or seen[-1] != body["status"]:
                seen.append(body["status"])
            if body["status"] in wanted:
                return body
            if time.monotonic() > deadline:
                raise FlowError(
                    f"video {video_id} still {body['status']} after {deadline_s} s "
                    f"(went through {seen}; reason {body.get('status_reason')!r})"
                )
            time.sleep(interval_s)

    def delete_video(self, who: Account, video_id: str) -> None:
        _check(self.http.delete(f"/v1/videos/{video_id}", headers=who.headers), 200, 202, 204)

    # -- playback ------------------------------------------------------------------------
    def play(self, video: Any) -> Playback:
        """Fetch what a player fetches first from `hls_url`, checking each response."""
        master_url = video["hls_url"]
        assert master_url, f"published video has no hls_url: {video}"
        master_response = httpx.get(master_url, timeout=30)
        _check(master_response, 200)
        master = m3u8.loads(master_response.text, uri=master_url)
        assert master.is_variant and master.playlists, f"not a master playlist: {master_url}"
        variant_uri = urljoin(master_url, master.playlists[0].uri)
        media_response = httpx.get(variant_uri, timeout=30)
        _check(media_response, 200)
        media = m3u8.loads(media_response.text, uri=variant_uri)
        assert media.segments, f"media playlist without segments: {variant_uri}"
        first = media.segments[0]
        init_uri = first.init_section.uri if first.init_section else None
        assert init_uri, f"CMAF playlist without EXT-X-MAP: {variant_uri}"
        init = httpx.get(urljoin(variant_uri, init_uri), timeout=30)
        _check(init, 200)
        segment = httpx.get(urljoin(variant_uri, first.uri), timeout=30)
        _check(segment, 200)
        return Playback(
            master=master,
            variant_uri=variant_uri,
            media=media,
            init_section=init.content,
            segment=segment.content,
            segment_content_type=segment.headers.get("content-type", ""),
        )

    # -- review (moderators) -------------------------------------------------------------
    def review_queue(self, moderator: Account, limit: int = 50) -> Any:
        """`GET /v1/moderation/queue`: the videos in review, with review-signed media URLs."""
        response = self.http.get(
            "/v1/moderation/queue", params={"limit": limit}, headers=moderator.headers
        )
        return _check(response, 200)

    def decide(self, moderator: Account, video_id: str, decision: str, reason: str = "") -> Any:
        body = {"decision": decision, "reason": reason}
        response = self.http.post(
            f"/v1/moderation/{video_id}/decision", json=body, headers=moderator.headers
        )
        return _check(response, 200)

    # -- social --------------------------------------------------------------------------
    def like(self, who: Account, video_id: str, key: str | None = None) -> httpx.Response:
        return self._post(who, f"/v1/videos/{video_id}/like", None, key)

    def follow(self, who: Account, user_id: str, key: str | None = None) -> httpx.Response:
        return self._post(who, f"/v1/users/{user_id}/follow", None, key)

    def comment(
        self, who: Account, video_id: str, body: str, key: str | None = None
    ) -> httpx.Response:
        return self._post(who, f"/v1/videos/{video_id}/comments", {"body": body}, key)

    def comments(self, video_id: str, viewer: Account | None = None) -> Any:
        return _check(self.http.get(f"/v1/videos/{video_id}/comments", headers=_h(viewer)), 200)

    def events(self, who: Account, events: list[dict[str, Any]]) -> Any:
        return _check(
            self.http.post("/v1/events", json={"events": events}, headers=who.headers), 200, 202
        )

    def feed(self, who: Account, kind: str, limit: int = 20, cursor: str | None = None) -> Any:
        params: dict[str, Any] = {"type": kind, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        return _check(self.http.get("/v1/feed", params=params, headers=who.headers), 200)

    def _post(self, who: Account, path: str, body: Any, key: str | None) -> httpx.Response:
        headers = dict(who.headers)
        if key:
            headers["Idempotency-Key"] = key
        response = self.http.post(path, json=body, headers=headers)
        _check(response, 200, 201, 204)
        return response


def _h(who: Account | None) -> dict[str, str]:
    return who.headers if who is not None else {}


def _chunks(fh: Any, size: int = 64 * 1024) -> Any:
    while chunk := fh.read(size):
        yield chunk
