"""The processing job: an uploaded video in, a published (or rejected, or failed) video out.

Issue 3, "Video lifecycle and jobs". A job carries only a video id; `Runtime.process` reloads
the row and is idempotent:

1. claim: the job's outbox row must be free and the video `processing` (anything else,
   deleted included, is skipped), and `attempts` is counted up; past the retry budget the video
   becomes `failed`; the job holds its lease with a heartbeat (api/jobs/joblease.py);
2. the upload parts (`uploads/{vid}/{offset:012d}`, concatenated in key order) are joined
   into one private file under `settings.work_dir` and checked against `upload_size`
   (api/jobs/inputs.py);
3. a source longer than `chunk_threshold_seconds` is split instead: its chunk and audio jobs
   are enqueued and this job ends (api/jobs/chunking.py; the assembly then runs step 5);
   otherwise the engine transcodes it in its bounded child (`engine.jobs.transcode_limited`),
   its progress going to `video_progress` (api/jobs/progress.py: best effort, throttled);
   input the engine refuses makes the video `rejected` with the engine's one-line reason and
   is never retried;
4. the outputs go to storage under a fresh, immutable prefix `media/{vid}/{render_id}/`
   (steps 4-5 are api/jobs/publish.py, shared with the chunked runs);
5. one transaction flips the video to `published` (compare-and-set on `processing`) and
   counts it on its author; or, when the safety checks that ran on the transcode's decode
   say so (api/safety: moderation scores, caption words, the PDQ blocklist, copyright),
   to `in_review` or `rejected` with the reason, the outputs stored but served nowhere, and
   the checks' findings in `video_safety` (worst-frame JPEGs under `safety/{vid}/`). When
   that fails (deleted meanwhile, or another delivery of the same job won), this run's
   prefixes are deleted: a reader never sees a half-published video and a job delivered
   twice publishes once.

Our own failures (storage, database, the engine's own errors) raise, so that Dramatiq retries
them with backoff; on the last attempt the video is marked `failed` instead.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from api.core import lifecycle
from api.core import progress as stages
from api.core.db import sync_engine
from api.core.keys import media_prefix, upload_prefix, work_prefix
from api.core.services import make_storage
from api.core.settings import Settings
from api.core.tables import videos
from api.jobs import joblease
from api.jobs import publish as publishing
from api.jobs.chunking import Chunking, Dispatch
from api.jobs.inputs import fetch_upload
from api.jobs.progress import RunProgress
from api.jobs.report import failed_reason, owner_reason
from api.safety.config import analysis_spec
from cdn.storage import Storage
from engine.errors import InputRejected
from engine.jobs import transcode_limited
from engine.loudness import LoudnessSpec
from engine.pipeline import TranscodeOptions
from engine.policy import InputPolicy

log = logging.getLogger("reelforge.processing")

MAX_ATTEMPTS = 6
"""Deliveries of one video's job before it is marked failed (worker.py: 1 + max_retries).

Every delivery counts, including those after a worker was killed mid-job, so a video that
keeps taking workers down ends `failed` instead of cycling forever."""


class InputRejectedError(Exception):
    """The upload itself was refused; never retried (`process` records it and returns)."""


class Runtime:
    """What the worker's actors call; one per worker process, shared by its threads.

    The database engine and the storage client are built from the settings on first use,
    once; a caller may hand in its own (tests, tools). `on_published` is called with the
    video id once a video is published (worker.py passes its edge pre-warm); its failure is
    logged and never touches the publication.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        storage: Storage | None = None,
        db: Engine | None = None,
        on_published: Callable[[str], object] | None = None,
        dispatch: Dispatch | None = None,
    ) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._db: Engine | None = db
        self._owns_db = db is None
        self._storage: Storage | None = storage
        self._swept = False
        self._on_published = on_published
        # Split and stitch (api/jobs/chunking.py): `dispatch` enqueues a part's message.
        self.chunking = Chunking(self, dispatch)

    # -- resources --------------------------------------------------------------------

    @property
    def db(self) -> Engine:
        with self._lock:
            if self._db is None:
                self._db = sync_engine(self.settings)
            return self._db

    @property
    def storage(self) -> Storage:
        with self._lock:
            if self._storage is None:
                self._storage = make_storage(self.settings)
            return self._storage

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._owns_db:
                self._db.dispose()
                self._db = None

    # -- the jobs -----------------------------------------------------------------------

    def process(self, video_id: str) -> None:
        """Transcode and publish one video (see the module docstring). The job is taken with
        its lease (api/jobs/joblease.py) and held with a heartbeat while it runs."""
        lease_s = self.settings.job_lease_s
        claimed = joblease.claim(self.db, video_id, lease_s)
        if claimed is None:
            return
        row, attempt = claimed
        ended = False  # off record when it ends; queued again when it raises (a retry comes)
        try:
            if attempt > MAX_ATTEMPTS:
                self.give_up(video_id, failed_reason(attempt - 1, None))
                ended = True
                return
            progress = RunProgress.begin(self.db, video_id, attempt)
            with joblease.holding(self.db, video_id, attempt, lease_s):
                try:
                    self._run(row, progress)
                except Exception as exc:
                    if attempt < MAX_ATTEMPTS:
                        log.warning(
                            "video %s attempt %d failed: %r (retried)", video_id, attempt, exc
                        )
                        progress.requeued()
                        raise
                    log.exception("video %s failed on its last attempt", video_id)
                    if self.give_up(video_id, failed_reason(attempt, exc)):
                        progress.finish(stages.FAILED)
            ended = True
        finally:
            if ended:
                joblease.finish(self.db, video_id, attempt)
            else:
                joblease.requeue(self.db, video_id, attempt)

    def give_up(self, video_id: str, reason: str = "") -> bool:
        """Mark a still-processing video `failed`; True if this call moved it."""
        reason = reason or failed_reason(None, None)
        with self.db.begin() as conn:
            status = _status(conn, video_id)
            if status != lifecycle.PROCESSING:
                return False
            try:
                lifecycle.move_sync(conn, video_id, lifecycle.FAILED, reason)
            except lifecycle.TransitionError:
                return False
        return True

    def cleanup(self, video_id: str) -> None:
        """Remove a deleted video's media and upload objects (idempotent)."""
        with self.db.connect() as conn:
            status = _status(conn, video_id)
        if status is not None and status != lifecycle.DELETED:
            log.info("cleanup of video %s skipped: it is %s", video_id, status)
            return
        removed = self.storage.delete_prefix(media_prefix(video_id))
        removed += self.storage.delete_prefix(work_prefix(video_id))
        removed += self.storage.delete_prefix(upload_prefix(video_id))
        log.info("cleanup of video %s removed %d object(s)", video_id, removed)

    def unfinished(self) -> list[tuple[str, str]]:
        """(video id, lane) of every video the database says still needs processing."""
        query = (
            select(videos.c.id, videos.c.lane)
            .where(videos.c.status.in_(lifecycle.UNFINISHED))
            .order_by(videos.c.updated_at)
        )
        with self.db.connect() as conn:
            return [(row.id, row.lane) for row in conn.execute(query)]

    # -- steps --------------------------------------------------------------------------

    def sweep_work(self, older_than_s: float | None = None) -> int:
        """Remove work dirs left by runs that were killed (SIGKILL skips `finally`).

        By default only dirs older than the longest a job may live (its time limit plus the
        transfer margin, plus ten minutes) go, so a job still running on this machine in
        another worker process keeps its files. Embedded mode sweeps everything at start.
        """
        root = self.settings.work_dir
        if older_than_s is None:
            older_than_s = self.settings.transcode_time_limit_s + 900.0
        cutoff = time.time() - older_than_s
        removed = 0
        if not root.is_dir():
            return 0
        for entry in root.iterdir():
            try:
                if entry.is_dir() and not entry.is_symlink() and entry.stat().st_mtime <= cutoff:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
            except OSError:
                continue
        if removed:
            log.info("removed %d stale work dir(s) under %s", removed, root)
        return removed

    def _run(self, row: Any, progress: RunProgress) -> None:
        work_root = self.settings.work_dir
        work_root.mkdir(parents=True, exist_ok=True)
        if not self._swept:
            self._swept = True
            self.sweep_work()
        workdir = Path(tempfile.mkdtemp(prefix=f"{row.id}-", dir=work_root))
        try:
            source = workdir / "source"
            fetch_upload(self.storage, row.id, int(row.upload_size), source)
            progress.stage(stages.PROBING)
            try:
                if self.chunking.enabled and self.chunking.start(row, progress, source):
                    return  # its parts are enqueued; the assembly publishes
                report = transcode_limited(
                    source,
                    workdir / "out",
                    self.options(workdir / "analysis"),
                    progress=progress.engine_fraction,
                )
            except InputRejected as exc:
                if self.reject(row.id, owner_reason(exc, workdir)):
                    progress.finish(stages.REJECTED)
                return
            progress.engine_done()
            if _status_now(self.db, row.id) != lifecycle.PROCESSING:
                log.info("video %s left processing during its transcode; not stored", row.id)
                return
            self.publish(row, workdir / "out", report, workdir / "analysis", progress)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def options(
        self, artifacts_dir: Path | None = None, encoder: str | None = None
    ) -> TranscodeOptions:
        # The engine's own deadline: past it the input counts as hostile (rejected); the
        # actor's Dramatiq time limit (worker.py) adds room for the transfers around it.
        policy = replace(
            InputPolicy(),
            max_wall_seconds=float(self.settings.transcode_time_limit_s),
            max_duration=float(self.settings.max_duration_seconds),
            max_file_size=max(InputPolicy().max_file_size, self.settings.max_upload_bytes),
        )
        return TranscodeOptions(
            segment_seconds=self.settings.segment_seconds,
            preset=self.settings.preset,
            encoder=encoder or self.settings.encoder,
            policy=policy,
            analysis=analysis_spec(self.settings, artifacts_dir),
            loudness=LoudnessSpec(
                enabled=self.settings.loudness_normalize,
                target_lufs=self.settings.loudness_target_lufs,
                true_peak_dbtp=self.settings.true_peak_dbtp,
            ),
        )

    def reject(self, video_id: str, reason: str) -> bool:
        """The engine refused the input: `rejected`, with its reason for the owner."""
        with self.db.begin() as conn:
            if _status(conn, video_id) != lifecycle.PROCESSING:
                return False
            lifecycle.move_sync(conn, video_id, lifecycle.REJECTED, reason)
        log.info("video %s rejected: %s", video_id, reason)
        return True

    def publish(
        self,
        row: Any,
        outdir: Path,
        report: dict[str, Any],
        artifacts: Path | None = None,
        progress: RunProgress | None = None,
        *,
        early_of: str | None = None,
        replaces: str | None = None,
        growing: str | None = None,
    ) -> bool:
        """Route, store, then move the video in one transaction (api/jobs/publish.py)."""
        return publishing.publish(
            self, row, outdir, report, artifacts, progress,
            early_of=early_of, replaces=replaces, growing=growing, announce=self._announce,
        )  # fmt: skip

    def _announce(self, video_id: str) -> None:
        """Tell `on_published` (the edge pre-warm) without ever failing the publication."""
        if self._on_published is None:
            return
        try:
            self._on_published(video_id)
        except Exception:
            log.exception("video %s: the after-publication hook failed", video_id)


def _status(conn: Any, video_id: str) -> str | None:
    value = conn.execute(select(videos.c.status).where(videos.c.id == video_id)).scalar()
    return None if value is None else str(value)


def _status_now(db: Engine, video_id: str) -> str | None:
    with db.connect() as conn:
        return _status(conn, video_id)
