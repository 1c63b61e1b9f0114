"""`serve --demo`: a standard-library HTTP client that, once the server is ready, registers
the `demo` account and uploads and publishes the sample clip through the server's own API;
then a few more creators publish a clip each, so the web app's feed at `/` has videos to
swipe (issue 18; the for-you feed shows one video per creator in any five)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.media import ProgressBar

DEMO_HANDLE = "demo"
# The other creators the demo seeds, one clip each (another colour and tone per creator).
FEED_CREATORS = ("demo_aurora", "demo_tide", "demo_ember", "demo_moss")
FEED_SIZE = (720, 1280)  # smaller than the main sample: quick to make and to process
# Where the demo video stays once its job is done (api/core/lifecycle.py).
SETTLED = ("published", "in_review", "rejected", "failed")


def _call(
    method: str, url: str, body: Any = None, token: str = "", **extra: Any
) -> tuple[int, Any]:
    """One JSON request with the standard library (the demo needs no HTTP client package)."""
    import urllib.error
    import urllib.request

    headers = dict(extra.pop("headers", {}))
    data = extra.pop("data", None)
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def _demo_account(base: str, data_dir: Path, handle: str = DEMO_HANDLE) -> str:
    """The token of `_demo_session`."""
    return str(_demo_session(base, data_dir, handle)["token"])


def _demo_session(base: str, data_dir: Path, handle: str = DEMO_HANDLE) -> dict[str, Any]:
    """Log in as `handle`, registering it first when missing; the password lives in the data
    dir (`demo-account.json` for `demo`, `demo-account-HANDLE.json` for the others)."""
    import secrets

    name = "demo-account.json" if handle == DEMO_HANDLE else f"demo-account-{handle}.json"
    creds_path = data_dir / name
    if creds_path.is_file():
        creds = json.loads(creds_path.read_text())
        status, body = _call("POST", f"{base}/v1/auth/login", creds)
    else:
        creds = {"handle": handle, "password": secrets.token_urlsafe(18)}
        status, body = _call("POST", f"{base}/v1/auth/register", creds)
        if status == 409:
            raise RuntimeError(f"account {handle!r} exists but {creds_path} (its password) is gone")
        if status in (200, 201):
            creds_path.write_text(json.dumps(creds))
            creds_path.chmod(0o600)
    if status not in (200, 201):
        raise RuntimeError(f"demo account: HTTP {status}: {body}")
    return dict(body)


def _demo_upload(base: str, token: str, clip: Path, caption: str = "Reelforge demo clip") -> str:
    """Upload through the signed upload URL (as a phone would), then publish; returns the id."""
    from urllib.parse import urljoin

    size = clip.stat().st_size
    request = {"file_size_bytes": size, "content_type": "video/mp4"}
    status, ticket = _call("POST", f"{base}/v1/videos/upload-url", request, token)
    if status not in (200, 201):
        raise RuntimeError(f"upload-url: HTTP {status}: {ticket}")
    headers = {**ticket.get("headers", {}), "Content-Length": str(size)}
    with clip.open("rb") as fh:
        status, body = _call(
            ticket.get("method", "PUT"),
            urljoin(base + "/", ticket["upload_url"]),
            headers=headers,
            data=fh,
        )
    if status >= 300:
        raise RuntimeError(f"upload: HTTP {status}: {body}")
    video_id = str(ticket["video_id"])
    publish = {"caption": caption, "privacy": "public"}
    status, body = _call("POST", f"{base}/v1/videos/{video_id}/publish", publish, token)
    if status != 202:
        raise RuntimeError(f"publish: HTTP {status}: {body}")
    return video_id


def describe_processing(processing: dict[str, Any]) -> str:
    """`transcoding 0/1 parts, ETA 7 s`: the owner's `processing` object in a few words."""
    text = f"{processing['stage']} {processing['parts_done']}/{processing['parts_total']} parts"
    eta = processing.get("eta_s")
    return text if eta is None else f"{text}, ETA {eta} s"


def wait_for_video(
    base: str,
    token: str,
    video_id: str,
    deadline: float,
    *,
    stop: Callable[[], bool] = lambda: False,
    bar: ProgressBar | None = None,
    poll_s: float = 0.5,
) -> dict[str, Any] | None:
    """Poll `GET /v1/videos/{id}` as its owner until the video settles; None past `deadline`
    (a `time.monotonic()` value) or once `stop()` says so.

    Its `processing` object drives a progress bar on a terminal; elsewhere (a log) each new
    stage is one line."""
    bar = bar or ProgressBar("processing")
    stage = ""
    try:
        while time.monotonic() < deadline and not stop():
            status, video = _call("GET", f"{base}/v1/videos/{video_id}", token=token)
            # in_review: held by the safety checks, it waits for a moderator, not for the job.
            if status == 200 and video["status"] in SETTLED:
                bar(1.0, "done")
                return dict(video)
            processing = video.get("processing") if status == 200 else None
            if processing:
                bar(processing["percent"] / 100, describe_processing(processing))
                if not bar.enabled and processing["stage"] != stage:
                    stage = processing["stage"]
                    print(
                        f"demo: video {video_id} {describe_processing(processing)}"
                        f" ({processing['percent']:g} %)",
                        flush=True,
                    )
            time.sleep(poll_s)
        return None
    finally:
        bar.done()


def run_demo(settings: Any, server: Any, seconds: float, deadline_s: float = 900) -> None:
    """`serve --demo`: once the server is ready, publish the sample clip through its own API."""
    from engine.sample import make_sample

    base = settings.public_url
    try:
        deadline = time.monotonic() + deadline_s
        while not server.started or _call("GET", f"{base}/readyz")[0] != 200:
            if server.should_exit or time.monotonic() > deadline:
                return
            time.sleep(0.2)
        clip = settings.data_dir / "demo" / f"sample-{seconds:g}s.mp4"
        if not clip.is_file():
            make_sample(clip, seconds=seconds)
        token = _demo_account(base, settings.data_dir)
        video_id = _demo_upload(base, token, clip)
        print(f"demo: account {DEMO_HANDLE!r}, token {token}", flush=True)
        print(f"demo: video {video_id} is processing ({base}/v1/videos/{video_id})", flush=True)
        video = wait_for_video(
            base, token, video_id, deadline, stop=lambda: bool(server.should_exit)
        )
        if video is not None:
            reason = video["status_reason"]
            detail = f" ({reason})" if reason and reason != video["status"] else ""
            print(f"demo: video {video_id} {video['status']}{detail}", flush=True)
            if video["hls_url"]:
                print(f"demo: play {video['hls_url']} or {video['dash_url']}", flush=True)
        seed_feed(settings, server, seconds, deadline)
        print(f"demo: the web app: open {base}/ (For You: swipe, or the arrow keys)", flush=True)
    except Exception as exc:  # the demo is a guest: it reports and leaves the server running
        print(f"demo: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def seed_feed(settings: Any, server: Any, seconds: float, deadline: float) -> list[str]:
    """One clip each from `FEED_CREATORS` (skipping a creator who already has a video, so a
    restart on the same data dir adds none); waits until they settle; the published ids."""
    from engine.sample import make_sample

    base = settings.public_url
    queued: list[tuple[str, str]] = []
    for variant, handle in enumerate(FEED_CREATORS, start=1):
        if server.should_exit:
            return []
        session = _demo_session(base, settings.data_dir, handle)
        token, user_id = str(session["token"]), str(session["user"]["id"])
        status, page = _call("GET", f"{base}/v1/users/{user_id}/videos?limit=1", token=token)
        if status == 200 and page["videos"]:
            continue
        clip = settings.data_dir / "demo" / f"{handle}-{seconds:g}s.mp4"
        if not clip.is_file():
            width, height = FEED_SIZE
            make_sample(clip, seconds=seconds, width=width, height=height, variant=variant)
        caption = f"demo clip {variant} by @{handle}"
        queued.append((token, _demo_upload(base, token, clip, caption)))
    if queued:
        print(f"demo: seeding the feed: {len(queued)} more video(s) processing", flush=True)
    published: list[str] = []
    for token, video_id in queued:
        while time.monotonic() < deadline and not server.should_exit:
            status, video = _call("GET", f"{base}/v1/videos/{video_id}", token=token)
            if status == 200 and video["status"] in SETTLED:
                if video["status"] == "published":
                    published.append(video_id)
                break
            time.sleep(0.5)
    return published
