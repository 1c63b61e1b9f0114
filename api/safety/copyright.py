"""Copyright: an upload's audio fingerprint against the reference catalog, the owner's policy,
the claim, and the muted re-packaging (issue 5, "Copyright: audio fingerprints").

The worker (api/safety/routing.py `route`) calls `evaluate` with the `fingerprint` analyzer's
result from the transcode's report: no match → allow; a match → the reference's policy, `block`
(the video is rejected), `mute` (published without its audio track: `mute_outputs`) or `allow`
(published; the claim is recorded so the rights holder can be credited). Claims are written by
`record_claim` in the caller's transaction, or by `evaluate` itself when given the video id.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, delete, insert

from api.core.db import now_ms
from api.core.settings import Settings
from api.core.tables import copyright_claims
from classifiers import catalog
from classifiers.fingerprint import Fingerprint
from packager.cmaf import describe_track
from packager.manifests import write_manifests
from packager.model import DASH_MANIFEST, DOWNLOAD_NAME, HLS_MASTER, INIT_NAME
from packager.progressive import write_download

Action = Literal["allow", "block", "mute"]
AUDIO_FOLDER = "audio"


@dataclass(frozen=True, slots=True)
class CopyrightOutcome:
    """What to do with the upload, and the claim behind it (None when nothing matched)."""

    action: Action = "allow"
    claim: dict[str, Any] | None = field(default=None)


def evaluate(
    conn: Connection,
    fingerprint_result: dict[str, Any] | None,
    settings: Settings,
    video_id: str | None = None,
) -> CopyrightOutcome:
    """Match the upload's fingerprint (`FingerprintAnalyzer.result()`) against the catalog.

    A video without audio, or whose audio matches nothing, is allowed with no claim. With
    `video_id`, the claim is also recorded (`record_claim`) on `conn`.
    """
    if not fingerprint_result or not fingerprint_result.get("count"):
        return CopyrightOutcome()
    query = Fingerprint.from_json(fingerprint_result)
    found = catalog.match(conn, query, min_score=settings.fingerprint_min_score)
    if found is None:
        return CopyrightOutcome()
    action: Action = found.policy if found.policy in catalog.POLICIES else "block"  # type: ignore[assignment]
    claim = {
        "ref_id": found.ref_id,
        "name": found.name,
        "owner": found.owner,
        "policy": found.policy,
        "offset_s": round(found.offset_s, 3),
        "score": found.score,
        "action": action,
    }
    if video_id is not None:
        record_claim(conn, video_id, claim)
    return CopyrightOutcome(action, claim)


def record_claim(conn: Connection, video_id: str, claim: dict[str, Any] | None) -> None:
    """Write (or rewrite: a job may run twice) the video's `copyright_claims` row."""
    if not claim:
        return
    conn.execute(delete(copyright_claims).where(copyright_claims.c.video_id == video_id))
    conn.execute(
        insert(copyright_claims).values(
            video_id=video_id,
            ref_id=int(claim["ref_id"]),
            owner=str(claim["owner"]),
            offset_s=float(claim["offset_s"]),
            score=int(claim["score"]),
            action=str(claim["action"]),
            created_at=now_ms(),
        )
    )


def mute_outputs(outdir: Path) -> None:
    """Re-package a transcode's outputs without audio: `master.m3u8` and `manifest.mpd`
    re-rendered from the video renditions alone (packager/manifests.py), `download.mp4` remuxed
    again from its rung alone (packager/progressive.py), then `audio/` removed.

    The entry points are rewritten first, so a reader never finds one naming a removed file.
    Idempotent: outputs that have no audio folder are left as they are.
    """
    outdir = Path(outdir)
    if not (outdir / AUDIO_FOLDER).is_dir():
        return
    folders = sorted(
        path
        for path in outdir.iterdir()
        if path.is_dir() and path.name != AUDIO_FOLDER and (path / INIT_NAME).is_file()
    )
    tracks = [describe_track(path, path.name) for path in folders]
    video = [track for track in tracks if track.kind == "video"]
    if not video or not (outdir / HLS_MASTER).is_file() or not (outdir / DASH_MANIFEST).is_file():
        raise ValueError(f"{outdir}: not a transcode's output (no video renditions or manifests)")
    write_manifests(outdir, video, None)
    if (outdir / DOWNLOAD_NAME).is_file():
        write_download(outdir, video, None)
    shutil.rmtree(outdir / AUDIO_FOLDER)
