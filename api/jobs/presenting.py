"""Split and stitch, the presentations of a chunked run (issue 15): the early publish and the
assembly (api/jobs/chunking.py steps 3-4).

- the early publish ("Playable early") runs once the preview and the audio are done, in the
  worker whose part finished them (exactly once: api/jobs/partrows.py `claim_playable`),
  before it takes another message, so it never waits behind the chunks in the queue. It
  downloads those two parts, stitches the low rungs and the audio into a complete
  presentation in its child (api/jobs/chunkwork.py `early_job`) and publishes it under the
  run's early render id, only if safety routing publishes it outright (api/jobs/publish.py).
  It is a head start, never a requirement: when it fails, or routing holds the video, the
  assembly publishes as if there had been none.
- the assembly runs once every part is done (`claim_assembly`, then its own message):
  downloads the parts, stitches every rung in its child (`assemble_job`, which decodes
  nothing: the preview part, or each chunk for its range, analysed the frames and made the
  thumbnails; the chunks' taps are merged there, engine/tapmerge.py), then publishes: a
  `processing` video as the single pass does, one published early by swapping its render for
  the complete one; then removes the run's work prefix. A run without a preview first gets
  its growing presentation's last publish (its ENDLIST, if the parts' own did not make it:
  api/jobs/progressive.py), and its growing render is kept served like a replaced early one.

Both hold their row's lease while they work (api/jobs/partrows.py `holding`), so a duplicate
delivery is skipped and a lapsed one is sent again by the run reaper (api/jobs/partreaper.py).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, select

from api.core import progress as stages
from api.core.keys import part_prefix, work_prefix
from api.core.tables import videos
from api.jobs import chunkwork, progressive
from api.jobs.host import JobHost
from api.jobs.partrows import (
    ASSEMBLY,
    AUDIO,
    CLAIMED,
    DONE,
    FAILED,
    PART_ATTEMPTS,
    PLAYABLE,
    PREVIEW,
    claim_assembly,
    count_attempt,
    holding,
    part_name,
    release,
    run_encoder,
    set_state,
)
from api.jobs.progress import RunProgress
from api.jobs.publish import early_render_id
from cdn.storage import Storage
from engine.sandbox import run_limited

log = logging.getLogger("reelforge.chunking")


class Jobs(Protocol):
    """What the presentations use of api/jobs/chunking.py `Chunking`."""

    @property
    def host(self) -> JobHost: ...
    def workdir(self, video_id: str) -> Path: ...
    def cache_dir(self, video_id: str) -> Path: ...
    def source(self, video_id: str) -> Path: ...
    def discard(self, prefix: str) -> None: ...
    def gave_up(
        self, video_id: str, run_id: str, kind: str, index: int, exc: BaseException | None = None
    ) -> None: ...


def _download(storage: Storage, video_id: str, run_id: str, names: list[str], to: Path) -> None:
    """The named parts' folders of the run (every part when `names` is empty) into `to`."""
    prefixes = [part_prefix(video_id, run_id, n) for n in names] or [work_prefix(video_id, run_id)]
    root = work_prefix(video_id, run_id)
    for prefix in prefixes:
        for info in storage.list(prefix):
            target = to / info.key[len(root) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            storage.download(info.key, target)


def _video(db: Engine, video_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(videos).where(videos.c.id == video_id)).one()


def _present(
    jobs: Jobs,
    video_id: str,
    run_id: str,
    job: Callable[..., dict[str, Any]],
    names: list[str],
    then: Callable[[Any, Path, dict[str, Any], Path], Any],
) -> Any:
    """Download the parts `names`, run `job` on them in the child, hand its output to `then`."""
    host = jobs.host
    workdir = jobs.workdir(video_id)
    try:
        row = _video(host.db, video_id)
        source = jobs.source(video_id)
        parts = workdir / "parts"
        _download(host.storage, video_id, run_id, names, parts)
        options = host.options(None, run_encoder(host.db, video_id, run_id))
        settings = host.settings
        report = run_limited(
            job, source, options, settings.chunk_segments, settings.preview_rungs,
            parts, workdir / "out", **chunkwork.limits_of(options),
        )  # fmt: skip
        return then(row, workdir / "out", report, chunkwork.artifacts_of(parts))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def playable(jobs: Jobs, video_id: str, run_id: str) -> None:
    """The early publish (see the module doc); claimed by the caller. Never raises."""
    host = jobs.host
    lease_s = host.settings.part_lease_s
    attempt = count_attempt(host.db, video_id, run_id, PLAYABLE, 0, CLAIMED, lease_s=lease_s)
    if attempt is None:
        return
    try:
        with holding(host.db, video_id, run_id, PLAYABLE, 0, CLAIMED, attempt, lease_s):
            published = _present(
                jobs, video_id, run_id, chunkwork.early_job,
                [part_name(PREVIEW, 0), part_name(AUDIO, 0)],
                lambda row, out, report, artifacts: host.publish(
                    row, out, report, artifacts, early_of=run_id
                ),
            )  # fmt: skip
    except Exception:
        log.exception("video %s: the early publish failed; the assembly publishes", video_id)
        set_state(host.db, video_id, run_id, PLAYABLE, 0, CLAIMED, FAILED)
        return
    set_state(host.db, video_id, run_id, PLAYABLE, 0, CLAIMED, DONE)
    log.info("video %s: early presentation %s", video_id, "published" if published else "held")


def assemble(jobs: Jobs, video_id: str, run_id: str) -> None:
    """The assembly (see the module doc); its message is sent by the part that claimed it."""
    host = jobs.host
    lease_s = host.settings.part_lease_s
    # The run reaper sends this message for a run whose parts are all done but whose assembly
    # nobody claimed (the last part's worker died in between): claim it here then.
    claim_assembly(host.db, video_id, run_id)
    attempt = count_attempt(host.db, video_id, run_id, ASSEMBLY, 0, CLAIMED, lease_s=lease_s)
    if attempt is None:
        return
    if attempt > PART_ATTEMPTS:
        jobs.gave_up(video_id, run_id, ASSEMBLY, 0)
        return
    progress = RunProgress(host.db, video_id, run_id)
    progress.stage(stages.PACKAGING)
    # The growing presentation's last publish (its ENDLIST), if the parts' own did not make it.
    progressive.grow(jobs, video_id, run_id)
    growing = progressive.growing_render(host.db, video_id, run_id)

    def publish(row: Any, out: Path, report: dict[str, Any], artifacts: Path) -> bool:
        progress.stage(stages.ANALYSING)
        return host.publish(
            row, out, report, artifacts, progress, replaces=early_render_id(run_id),
            growing=growing,
        )  # fmt: skip

    try:
        with holding(host.db, video_id, run_id, ASSEMBLY, 0, CLAIMED, attempt, lease_s):
            _present(jobs, video_id, run_id, chunkwork.assemble_job, [], publish)
    except Exception as exc:
        if attempt < PART_ATTEMPTS:
            log.warning("video %s: assembly failed: %r (retried)", video_id, exc)
            release(host.db, video_id, run_id, ASSEMBLY, 0, CLAIMED, attempt)
            raise
        log.exception("video %s: the assembly failed on its last attempt", video_id)
        jobs.gave_up(video_id, run_id, ASSEMBLY, 0, exc)
        return
    jobs.discard(work_prefix(video_id, run_id))
    shutil.rmtree(jobs.cache_dir(video_id), ignore_errors=True)
    # The run's last write.
    set_state(host.db, video_id, run_id, ASSEMBLY, 0, CLAIMED, DONE)
