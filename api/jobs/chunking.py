"""Split and stitch across the worker pool (issue 15): the planner's hand-off and the part
jobs, with the database (`video_parts`) as the record of what must run.

1. plan: the transcode job (api/jobs/transcode.py) claims the video as for the single pass,
   probes and plans in its child (api/jobs/chunkwork.py); when the source is longer than
   `chunk_threshold_seconds` it writes one `video_parts` row per part (the preview when
   `preview_rungs` asks for one, every chunk, the audio track; without a preview the chunks
   run the frame analyzers and the thumbnail tap on their ranges, so the video is decoded
   once), one for the early publish (when the preview encodes a rung) and
   one for the assembly (deleting an older run's rows: that run is superseded), counts the
   parts in `video_progress` and enqueues one message per part, the preview and the audio
   first (a queue is first in, first out: with one worker, the video is playable once those
   two are done). Messages carry ids only (video, run, kind, index); every handler reloads the
   rows and skips a deleted video or a superseded run (api/jobs/partrows.py `run_alive`).
2. a part: takes its lease and counts an attempt on its `pending` row (compare-and-set:
   done, superseded, or held by another live delivery: skip; api/jobs/partrows.py), keeps
   the lease with a heartbeat while it works (gives it back when it fails and is retried),
   touches the video's `updated_at` (api/jobs/relay.py: the run is alive, no orphan), takes the
   source from storage (`uploads/{vid}/`, a copy cached per worker), encodes in the sandboxed
   child like the single pass, uploads its folder under `work/{vid}/{run}/{part}/`, then moves
   its row pending → done (compare-and-set: a redelivered message counts once) and counts a
   part in the progress. Our failure is retried alone by Dramatiq; the last attempt (or a
   message whose retries ran out) fails the video with a reason naming the part (a video
   already published early stays published with its early rungs).
3. the claims (api/jobs/partrows.py `claim`): after its own row is committed, a finished
   preview or audio part tries to claim the early publish, and every finished part the
   assembly; exactly one racer wins each. Before the assembly's claim, a finished chunk or
   audio part of a run without a preview extends the run's growing presentation
   (api/jobs/progressive.py: the contiguous prefix of done chunks, its owner's to play).
4. the early publish and the assembly: api/jobs/presenting.py.
5. a part whose worker died, or whose message was lost, is sent again by the run reaper
   (api/jobs/partreaper.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select

from api.core import progress as stages
from api.core.db import now_ms
from api.core.keys import part_prefix, work_prefix
from api.core.tables import video_parts, videos
from api.jobs import chunkwork, presenting, progressive
from api.jobs.host import JobHost
from api.jobs.inputs import fetch_upload
from api.jobs.partrows import (
    ASSEMBLY,
    AUDIO,
    CHUNK,
    CLAIMED,
    DONE,
    FAILED,
    PART_ATTEMPTS,
    PENDING,
    PLAYABLE,
    PREVIEW,
    claim_assembly,
    claim_playable,
    count_attempt,
    holding,
    part_label,
    part_name,
    record_run,
    release,
    run_encoder,
    set_state,
)
from api.jobs.progress import RunProgress
from api.jobs.report import owner_reason
from engine.errors import InputRejected
from engine.sandbox import run_limited

log = logging.getLogger("reelforge.chunking")

Dispatch = Callable[[str, str, str, int], None]
"""Enqueue one message: (video id, run id, kind, index); the assembly's index is 0."""


class Chunking:
    """The chunked jobs of one worker process (its threads share it), bound to its runtime."""

    def __init__(self, host: JobHost, dispatch: Dispatch | None) -> None:
        self.host = host
        self.dispatch = dispatch
        self._lock = threading.Lock()
        # A test's way to make a part fail: called with (video id, kind, index) before its work.
        self.fault: Callable[[str, str, int], None] | None = None

    @property
    def enabled(self) -> bool:
        return self.dispatch is not None and self.host.settings.chunk_threshold_seconds > 0

    # -- 1. the planner's hand-off ------------------------------------------------------

    def start(self, row: Any, progress: RunProgress, source: Path) -> bool:
        """Plan `source` (the upload, fetched by the transcode job); when it is to be chunked,
        write the parts, enqueue them and return True (the single pass is not run)."""
        settings = self.host.settings
        options = self.host.options()
        plan: chunkwork.JobPlan = run_limited(
            chunkwork.plan_job,
            source,
            options,
            settings.chunk_segments,
            settings.preview_rungs,
            wall_seconds=120.0,
            memory_bytes=options.policy.max_memory_bytes,
        )
        if self.dispatch is None or not settings.chunked(plan.duration) or plan.chunks < 2:
            return False
        # The preview part only where it encodes a rung: without one, the chunks tap the
        # frames (the run's one decode of the video).
        parts = [
            *([(PREVIEW, 0)] if plan.preview_rungs else []),
            *([(AUDIO, 0)] if plan.audio else []),
            *((CHUNK, i) for i in range(plan.chunks)),
        ]
        closing = [(ASSEMBLY, 0), *([(PLAYABLE, 0)] if plan.preview_rungs else [])]
        now = now_ms()
        with self.host.db.begin() as conn:
            conn.execute(delete(video_parts).where(video_parts.c.video_id == row.id))
            record_run(conn, row.id, progress.run_id, plan.encoder)
            if not plan.preview_rungs:  # the growing presentation (api/jobs/progressive.py)
                progressive.open_run(conn, row.id, progress.run_id, plan.chunks)
            conn.execute(
                insert(video_parts),
                [
                    {"video_id": row.id, "run_id": progress.run_id, "kind": kind, "part": index,
                     "state": PENDING, "attempts": 0, "updated_at": now}
                    for kind, index in [*parts, *closing]
                ],
            )  # fmt: skip
        self._keep_source(row.id, int(row.upload_size), source)
        progress.plan(len(parts))
        progress.stage(stages.TRANSCODING)
        for kind, index in parts:
            self.dispatch(row.id, progress.run_id, kind, index)
        log.info(
            "video %s: preview (%d rung(s)), %d chunk(s), audio %s, enqueued",
            row.id, plan.preview_rungs, plan.chunks, plan.audio,
        )  # fmt: skip
        return True

    # -- 2. a part ----------------------------------------------------------------------

    def run_part(self, video_id: str, run_id: str, kind: str, index: int) -> None:
        if kind == PLAYABLE:  # the run reaper's re-dispatch of a lapsed early publish
            presenting.playable(self, video_id, run_id)
            return
        lease_s = self.host.settings.part_lease_s
        db = self.host.db
        attempt = count_attempt(db, video_id, run_id, kind, index, lease_s=lease_s)
        if attempt is None:
            return
        if attempt > PART_ATTEMPTS:
            self.gave_up(video_id, run_id, kind, index)
            return
        try:
            with holding(db, video_id, run_id, kind, index, PENDING, attempt, lease_s):
                self._work(video_id, run_id, kind, index, attempt)
        except Exception:
            release(db, video_id, run_id, kind, index, PENDING, attempt)
            raise

    def _work(self, video_id: str, run_id: str, kind: str, index: int, attempt: int) -> None:
        progress = RunProgress(self.host.db, video_id, run_id)
        workdir = self.workdir(video_id)
        try:
            if self.fault is not None:
                self.fault(video_id, kind, index)
            source = self.source(video_id)
            folder = workdir / part_name(kind, index)
            settings = self.host.settings
            # The analyzers (the preview's, or each chunk's without one) write their worst
            # frames with the part's files.
            artifacts = folder / chunkwork.ARTIFACTS_FOLDER if kind in (PREVIEW, CHUNK) else None
            options = self.host.options(artifacts, run_encoder(self.host.db, video_id, run_id))
            limits = chunkwork.limits_of(options)
            shape = (settings.chunk_segments, settings.preview_rungs)
            if kind == CHUNK:
                run_limited(
                    chunkwork.chunk_job, source, options, *shape, index, folder,
                    progress=progress.fraction, **limits,
                )  # fmt: skip
            elif kind == PREVIEW:
                run_limited(
                    chunkwork.preview_job, source, options, *shape, folder,
                    progress=progress.fraction, **limits,
                )  # fmt: skip
            else:
                run_limited(chunkwork.audio_job, source, options, folder, **limits)
            self.host.storage.put_tree(
                part_prefix(video_id, run_id, part_name(kind, index)).rstrip("/"), folder
            )
        except InputRejected as exc:
            if self.host.reject(video_id, owner_reason(exc, workdir)):
                progress.finish(stages.REJECTED)
            return
        except Exception as exc:
            if attempt < PART_ATTEMPTS:
                log.warning("video %s %s: %r (retried)", video_id, part_name(kind, index), exc)
                raise
            log.exception("video %s: %s failed on its last attempt", video_id, kind)
            self.gave_up(video_id, run_id, kind, index, exc)
            return
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if set_state(self.host.db, video_id, run_id, kind, index, PENDING, DONE):
            progress.part_done()
            if kind in (PREVIEW, AUDIO) and claim_playable(self.host.db, video_id, run_id):
                presenting.playable(self, video_id, run_id)  # here: it goes before any chunk
            if kind in (CHUNK, AUDIO):  # the growing presentation, if the run has one
                progressive.grow(self, video_id, run_id)
            if claim_assembly(self.host.db, video_id, run_id) and self.dispatch is not None:
                self.dispatch(video_id, run_id, ASSEMBLY, 0)

    def gave_up(
        self, video_id: str, run_id: str, kind: str, index: int, exc: BaseException | None = None
    ) -> None:
        """A part of the run ran out of attempts: it is failed, and so is the video if the run
        is still the video's and it is processing (a video published early keeps its early
        rungs, and its progress ends)."""
        was = CLAIMED if kind == ASSEMBLY else PENDING
        if not set_state(self.host.db, video_id, run_id, kind, index, was, FAILED):
            return
        with self.host.db.connect() as conn:
            chunks = conn.execute(
                select(video_parts.c.part).where(
                    video_parts.c.video_id == video_id,
                    video_parts.c.run_id == run_id,
                    video_parts.c.kind == CHUNK,
                )
            ).all()
        cause = f" ({type(exc).__name__})" if exc is not None else ""
        reason = (
            f"processing failed: {part_label(kind, index, len(chunks))} failed after "
            f"{PART_ATTEMPTS} attempts{cause}; this was our fault, please try again later"
        )
        progress = RunProgress(self.host.db, video_id, run_id)
        if self.host.give_up(video_id, reason):
            progress.finish(stages.FAILED)
        else:  # published early, it stays so with its early rungs; the run is over
            log.warning("video %s: %s", video_id, reason)
            progress.finish(stages.PUBLISHED)
        self.discard(work_prefix(video_id, run_id))

    def assemble(self, video_id: str, run_id: str) -> None:
        presenting.assemble(self, video_id, run_id)

    # -- files --------------------------------------------------------------------------

    def workdir(self, video_id: str) -> Path:
        root = self.host.settings.work_dir
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{video_id}-", dir=root))

    def cache_dir(self, video_id: str) -> Path:
        return self.host.settings.work_dir / f"src-{video_id}"

    def _keep_source(self, video_id: str, size: int, source: Path) -> None:
        """Keep the planner's copy of the upload as this worker's cached source."""
        cache = self.cache_dir(video_id)
        with self._lock:
            cache.mkdir(parents=True, exist_ok=True)
            if source.stat().st_size == size:
                os.replace(source, cache / "source")

    def source(self, video_id: str) -> Path:
        """This worker's copy of the video's upload, fetched from storage on first use."""
        cache = self.cache_dir(video_id)
        path = cache / "source"
        with self._lock:  # one download per worker process, whatever its threads ask
            if path.is_file():
                os.utime(cache)  # in use: the sweep below (on any worker) keeps it
                return path
            # Other videos' copies this worker took parts of (their assembly ran elsewhere) go
            # once they are older than any job lives (Runtime.sweep_work).
            self.host.sweep_work()
            with self.host.db.connect() as conn:
                size = conn.execute(
                    select(videos.c.upload_size).where(videos.c.id == video_id)
                ).scalar_one()
            cache.mkdir(parents=True, exist_ok=True)
            partial = cache / f"source.{os.getpid()}.partial"
            fetch_upload(self.host.storage, video_id, int(size), partial)
            os.replace(partial, path)
            return path

    def discard(self, prefix: str) -> None:
        try:
            self.host.storage.delete_prefix(prefix)
        except Exception:  # left for the video's cleanup
            log.exception("could not remove %s", prefix)
