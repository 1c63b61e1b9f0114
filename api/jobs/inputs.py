"""The processing job's input: an upload's stored parts joined into one local file.

The parts are `uploads/{vid}/{offset:012d}` (api/core/keys.py); joined in key order, each
must start where the previous one ended, and together they must make the declared size.
"""

from __future__ import annotations

from pathlib import Path

from api.core.keys import PART_NAME, upload_prefix
from cdn.storage import ObjectInfo, Storage


class UploadIncompleteError(Exception):
    """The stored parts do not add up to the declared upload (retried: a listing may lag)."""


def upload_parts(objects: list[ObjectInfo], video_id: str) -> list[tuple[int, ObjectInfo]]:
    """(offset, object) of each part, in key order; other names under the prefix are ignored."""
    prefix = upload_prefix(video_id)
    parts = []
    for info in sorted(objects, key=lambda item: item.key):
        name = info.key[len(prefix) :]
        if PART_NAME.fullmatch(name):
            parts.append((int(name), info))
    return parts


def fetch_upload(storage: Storage, video_id: str, expected: int, target: Path) -> None:
    """Join the upload's parts into `target`, checking offsets and the total size."""
    parts = upload_parts(storage.list(upload_prefix(video_id)), video_id)
    written = 0
    with open(target, "wb") as fh:
        for offset, info in parts:
            if offset != written:
                raise UploadIncompleteError(
                    f"upload of {video_id}: part at {offset} but {written} bytes before it"
                )
            for chunk in storage.open_range(info.key):
                fh.write(chunk)
            written += info.size
    if written != expected:
        raise UploadIncompleteError(
            f"upload of {video_id}: {written} bytes stored, {expected} declared"
        )
