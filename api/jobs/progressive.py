"""Playable early without a second decode (issue 15): a chunked run's growing presentation.

Chunks are enqueued in timeline order and the pools take them first in, first out, so they
finish roughly in order. Once the audio part and chunk 0 are done, and again each time the
contiguous prefix of done chunks grows, the worker that finished the part (after its own row
is committed, like the claims of api/jobs/partrows.py) publishes that prefix under the run's
render (`early_render_id(run_id)`: named after the run, so any worker knows it, and never
used by a run with a preview part, which has no growing presentation): every rung's segments
of the new chunks and the inits and the audio first, then the HLS EVENT media playlists, then
the master playlist (packager/growing.py). Segments are immutable; playlists are rewritten
(the origin serves manifests `max-age=2`).

Concurrency (`grow`): one `video_growing` row per video. A publish starts with an UPDATE of
the run's row (only while the video is `processing` and the playlists have not ended), which
holds the row's lock (PostgreSQL; SQLite's write lock) for the whole publish; under it, it
reads how many chunks are published and which are done, publishes the new prefix and writes
the new count in the same transaction. Two parts finishing together are serialized by the
lock; the second sees the first's count and publishes only what is left, so the published
prefix, and the playlists, never shrink. A superseded run (a newer run replaced the row in its
planner's transaction; a deleted or failed video) finds no row to lock and publishes nothing.
A failed publish is logged and left to the next part (or the assembly, which calls `grow`
before it stitches): never a part's failure.

Who sees it (api/videos/progress.py, api/media/origin.py): while the video is `processing`,
only its owner, under a playback token bound to the owner (as for a private video). The
assembly publishes the whole ladder as the single pass does and keeps the growing render
served for the token's lifetime (tables.superseded_renders), then the sweeper removes it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, delete, exists, insert, select, update

from api.core import lifecycle
from api.core.db import now_ms
from api.core.keys import media_key, part_prefix
from api.core.tables import video_growing, video_parts, videos
from api.jobs.host import JobHost
from api.jobs.partrows import AUDIO, CHUNK, DONE, part_name
from api.jobs.publish import early_render_id
from cdn.storage import Storage
from packager.growing import Growing, extend, measure, start_chunk
from packager.model import INIT_NAME
from packager.timeline import add_cmaf_brand

log = logging.getLogger("reelforge.progressive")


class Jobs(Protocol):
    """What a publish uses of api/jobs/chunking.py `Chunking`."""

    @property
    def host(self) -> JobHost: ...
    def workdir(self, video_id: str) -> Path: ...


_FILES = (".m4s", ".mp4")
"""What a publish takes of a part's folder: its segments and inits (not its analysis)."""


def open_run(conn: Any, video_id: str, run_id: str, chunks: int) -> None:
    """The run's growing row, in the planner's transaction (replacing an older run's)."""
    conn.execute(delete(video_growing).where(video_growing.c.video_id == video_id))
    conn.execute(
        insert(video_growing).values(
            video_id=video_id, run_id=run_id, render_id=early_render_id(run_id), chunks=0,
            total=chunks, seconds=0.0, renditions="[]", state="", ended=False, updated_at=now_ms(),
        )
    )  # fmt: skip


def growing_render(db: Engine, video_id: str, run_id: str) -> str | None:
    """The run's growing render when it published anything (to keep serving once replaced)."""
    query = select(video_growing.c.render_id).where(
        video_growing.c.video_id == video_id,
        video_growing.c.run_id == run_id,
        video_growing.c.chunks > 0,
    )
    with db.connect() as conn:
        value = conn.execute(query).scalar()
    return None if value is None else str(value)


def grow(jobs: Jobs, video_id: str, run_id: str) -> int | None:
    """Publish the run's longest prefix of done chunks if it grew (see the module doc); the
    chunks published, None when there is nothing to do. Never raises."""
    try:
        return _grow(jobs, video_id, run_id)
    except Exception:
        log.exception("video %s: the growing presentation was not extended", video_id)
        return None


def _grow(jobs: Jobs, video_id: str, run_id: str) -> int | None:
    host = jobs.host
    row = video_growing.c
    processing = exists().where(videos.c.id == video_id, videos.c.status == lifecycle.PROCESSING)
    mine = (row.video_id == video_id, row.run_id == run_id)
    with host.db.begin() as conn:
        held = conn.execute(
            update(video_growing)
            .where(*mine, row.ended.is_(False), processing)
            .values(updated_at=now_ms())
            .returning(row.chunks, row.total, row.state, row.render_id)
        ).first()
        if held is None:  # superseded, ended, or the video is no longer processing
            return None
        parts = conn.execute(
            select(video_parts.c.kind, video_parts.c.part, video_parts.c.state).where(
                video_parts.c.video_id == video_id,
                video_parts.c.run_id == run_id,
                video_parts.c.kind.in_((CHUNK, AUDIO)),
            )
        ).all()
        if any(p.kind == AUDIO and p.state != DONE for p in parts):
            return None
        done = {p.part for p in parts if p.kind == CHUNK and p.state == DONE}
        upto = held.chunks
        while upto in done:
            upto += 1
        if upto == held.chunks:
            return None
        has_audio = any(p.kind == AUDIO for p in parts)
        state = Growing.from_json(held.state) if held.state else Growing()
        ended = upto == held.total
        workdir = jobs.workdir(video_id)
        try:
            _publish(
                host.storage, video_id, run_id, held.render_id, workdir, state,
                range(held.chunks, upto), has_audio and not held.state,
            )  # fmt: skip
            _write_playlists(
                host.storage, video_id, held.render_id,
                state.playlists(host.settings.segment_seconds, ended),
            )  # fmt: skip
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        conn.execute(
            update(video_growing)
            .where(*mine, row.chunks == held.chunks)
            .values(
                chunks=upto,
                seconds=float(state.seconds),
                renditions=json.dumps(_renditions(state)),
                state=state.to_json(),
                ended=ended,
                updated_at=now_ms(),
            )
        )
    log.info(
        "video %s: growing presentation %s: %d of %d chunk(s), %.2f s%s",
        video_id, held.render_id, upto, held.total, float(state.seconds),
        ", ended" if ended else "",
    )  # fmt: skip
    return upto


def _publish(
    storage: Storage,
    video_id: str,
    run_id: str,
    render_id: str,
    workdir: Path,
    state: Growing,
    chunks: range,
    first_audio: bool,
) -> None:
    """Store the segments of `chunks` (and, the first time, the inits and the whole audio
    track), updating `state` with what they are."""
    if first_audio:
        folder = _download(storage, video_id, run_id, part_name(AUDIO, 0), workdir)
        (track_dir,) = [p for p in folder.iterdir() if (p / INIT_NAME).is_file()]
        add_cmaf_brand(track_dir)  # as the finished track's init
        state.audio = measure(track_dir)
        _store(storage, video_id, render_id, track_dir, with_init=True)
    for index in chunks:
        folder = _download(storage, video_id, run_id, part_name(CHUNK, index), workdir)
        facts = json.loads((folder / "part.json").read_text())
        tracks = {t.id: t for t in state.video}
        grown = []
        for rung in facts["rungs"]:
            track_dir = folder / rung
            state.delays[rung] = start_chunk(track_dir, state.delays.get(rung))
            grown.append(extend(tracks.get(rung), measure(track_dir)))
            _store(storage, video_id, render_id, track_dir, with_init=index == 0)
        state.video = grown
        shutil.rmtree(folder, ignore_errors=True)


def _download(storage: Storage, video_id: str, run_id: str, name: str, workdir: Path) -> Path:
    """A part's segments, inits and `part.json` into `workdir/name`."""
    prefix = part_prefix(video_id, run_id, name)
    folder = workdir / name
    for info in storage.list(prefix):
        if info.key.endswith(_FILES) or info.key.endswith("/part.json"):
            target = folder / info.key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            storage.download(info.key, target)
    return folder


def _store(
    storage: Storage, video_id: str, render_id: str, track_dir: Path, with_init: bool
) -> None:
    names = sorted(p.name for p in track_dir.glob("*.m4s"))
    for name in [*([INIT_NAME] if with_init else []), *names]:
        key = media_key(video_id, render_id, f"{track_dir.name}/{name}")
        storage.put_file(key, track_dir / name)


def _write_playlists(
    storage: Storage, video_id: str, render_id: str, texts: dict[str, str]
) -> None:
    """The media playlists, then the master (the segments they name are already stored)."""
    for path, text in texts.items():
        storage.put_bytes(
            media_key(video_id, render_id, path), text.encode(), "application/vnd.apple.mpegurl"
        )


def _renditions(state: Growing) -> list[dict[str, Any]]:
    """The rungs as `videos.renditions` lists them (api/jobs/report.py `summarize`: the
    variant's BANDWIDTH and CODECS, the rung's and the audio's)."""
    audio = state.audio
    return [
        {
            "name": track.id,
            "width": track.width,
            "height": track.height,
            "bandwidth": track.peak_bandwidth + (audio.peak_bandwidth if audio else 0),
            "codecs": ",".join([track.codecs, *([audio.codecs] if audio else [])]),
        }
        for track in state.video
    ]
