"""Public representations of videos (msgspec structs) and how a row becomes one (`video_out`);
the row comes from `api.videos.queries.video_query`."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

from api.core import progress
from api.core.settings import Settings
from api.media.playback import playback_prefix
from packager.model import DOWNLOAD_NAME


class Rendition(msgspec.Struct):
    name: str
    width: int
    height: int
    bandwidth: int
    codecs: str


class AuthorOut(msgspec.Struct):
    id: str
    handle: str
    display_name: str


class VideoOut(msgspec.Struct):
    id: str
    status: str
    status_reason: str
    author: AuthorOut
    caption: str
    privacy: str
    created_at: int
    published_at: int | None
    duration_s: float | None
    width: int | None
    height: int | None
    like_count: int
    comment_count: int
    view_count: int
    share_count: int
    hls_url: str | None
    dash_url: str | None
    poster_url: str | None
    # download.mp4: a progressive MP4 (720p + audio, faststart) for sharing and saving.
    mp4_url: str | None
    renditions: list[Rendition]


def video_out(row: Any, settings: Settings, viewer_id: str | None = None) -> VideoOut:
    """The public view of a video row; media URLs are signed for `viewer_id` where needed."""
    m = row._mapping
    published = m["status"] == "published" and m["render_id"]
    base = (
        playback_prefix(settings, m["id"], m["render_id"], m["privacy"], m["owner_id"], viewer_id)
        if published
        else None
    )
    renditions = [Rendition(**r) for r in json.loads(m["renditions"] or "[]")] if published else []
    return VideoOut(
        id=m["id"],
        status=m["status"],
        status_reason=m["status_reason"],
        author=AuthorOut(
            id=m["owner_id"], handle=m["author_handle"], display_name=m["author_display_name"]
        ),
        caption=m["caption"],
        privacy=m["privacy"],
        created_at=m["created_at"],
        published_at=m["published_at"],
        duration_s=m["duration_s"],
        width=m["width"],
        height=m["height"],
        like_count=m["like_count"],
        comment_count=m["comment_count"],
        view_count=m["view_count"],
        share_count=m["share_count"],
        hls_url=f"{base}/master.m3u8" if base else None,
        dash_url=f"{base}/manifest.mpd" if base else None,
        poster_url=f"{base}/poster.jpg" if base else None,
        mp4_url=f"{base}/{DOWNLOAD_NAME}" if base else None,
        renditions=renditions,
    )


class ProcessingOut(msgspec.Struct):
    """How far the processing of the owner's video is (api/core/progress.py)."""

    # queued, downloading, probing, transcoding, packaging, analysing, storing
    stage: str
    # Parts of the work done and in all: 1 part for a single-pass job.
    parts_done: int
    parts_total: int
    # 0..100, never decreasing within a run (a retried run starts again from 0).
    percent: float
    # Seconds left (elapsed × (1 − done) / done); null until 5 % is done and 3 s have passed.
    eta_s: int | None
    # When the running attempt started (ms since the epoch); null while queued.
    started_at: int | None
    # The growing presentation of a chunked run (issue 15, "Playable early"): its master
    # playlist (HLS EVENT, signed for the owner), the rungs ready in it and how many seconds
    # from the start play; null / [] / 0 until its first chunks and audio are published.
    hls_url: str | None = None
    renditions: list[Rendition] = msgspec.field(default_factory=list)
    playable_s: float = 0.0


class VideoDetailOut(VideoOut):
    """`GET /v1/videos/{id}`: the video, plus its processing progress for its owner while it
    is `processing` (null otherwise, and always for everyone else)."""

    processing: ProcessingOut | None = None


QUEUED_OUT = ProcessingOut(
    stage=progress.QUEUED, parts_done=0, parts_total=1, percent=0.0, eta_s=None, started_at=None
)


def processing_out(row: Any | None, now_ms: int) -> ProcessingOut:
    """A `video_progress` row as the owner sees it at `now_ms`; no row yet: queued."""
    if row is None:
        return QUEUED_OUT
    done = progress.overall(row.stage, row.parts_done, row.parts_total, row.fraction)
    eta = progress.eta_now(row.started_at, row.updated_at, now_ms, done)
    return ProcessingOut(
        stage=row.stage,
        parts_done=row.parts_done,
        parts_total=row.parts_total,
        percent=math.floor(round(done * 1000, 6)) / 10,
        eta_s=None if eta is None else math.ceil(eta),
        started_at=None if row.stage == progress.QUEUED else row.started_at,
    )


def video_detail(out: VideoOut, processing: ProcessingOut | None) -> VideoDetailOut:
    fields = {f: getattr(out, f) for f in out.__struct_fields__}
    return VideoDetailOut(**fields, processing=processing)
