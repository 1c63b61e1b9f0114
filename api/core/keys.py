"""The storage key layout: where each object of a video lives in the object store.

    uploads/{video}/{offset:012d}     the upload's parts (one per resumable append)
    media/{video}/{render}/{path}     a published render: manifests, segments, posters, MP4
    safety/{video}/{render}/{n}.jpg   the frames a moderator is shown
    work/{video}/{run}/{part}/{path}  a chunked run's finished parts, until it is assembled

A render id is new for every transcode, so media URLs are immutable and a re-render never
overwrites what edges cached.
"""

from __future__ import annotations

import re

PART_NAME = re.compile(r"[0-9]{12}")
"""The name of an upload part under `upload_prefix`: its starting byte offset."""


def upload_prefix(video_id: str) -> str:
    return f"uploads/{video_id}/"


def part_key(video_id: str, offset: int) -> str:
    """The part that starts at byte `offset` of the upload: `uploads/{vid}/{offset:012d}`."""
    return f"{upload_prefix(video_id)}{offset:012d}"


def media_prefix(video_id: str, render_id: str | None = None) -> str:
    """Every render of the video (`render_id` None), or one render's folder."""
    return f"media/{video_id}/" if render_id is None else f"media/{video_id}/{render_id}/"


def media_key(video_id: str, render_id: str, path: str) -> str:
    """One file of a render, `path` relative to its folder (`v360/init.mp4`)."""
    return f"{media_prefix(video_id, render_id)}{path}"


def safety_prefix(video_id: str, render_id: str | None = None) -> str:
    """The moderation frames of every render of the video, or of one render."""
    return f"safety/{video_id}/" if render_id is None else f"safety/{video_id}/{render_id}/"


def work_prefix(video_id: str, run_id: str | None = None) -> str:
    """Every chunked run's parts of the video (`run_id` None), or one run's."""
    return f"work/{video_id}/" if run_id is None else f"work/{video_id}/{run_id}/"


def part_prefix(video_id: str, run_id: str, part: str) -> str:
    """One finished part of a chunked run (`chunk-0003`, `audio`): its track folders."""
    return f"{work_prefix(video_id, run_id)}{part}/"
