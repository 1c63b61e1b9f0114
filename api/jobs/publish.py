"""The processing job's tail: route (api/safety/routing.py), store, then move the video in one
transaction (issue 3 step 5; issue 15, "Playable early").

Three ways in, one code path:

- `publish`: a finished presentation of a `processing` video (the single pass, or a chunked
  run that was not published early): `processing` → published | in_review | rejected, with
  the safety findings recorded and the video counted on its author when published;
- `publish(early=True)`: a chunked run's early presentation (its lowest rungs and audio,
  api/jobs/chunkwork.py `early_job`), stored under the run's own render id
  (`early_render_id`) and published only when routing says `published`; anything else
  (held for review, rejected, muted for copyright) waits for the whole ladder, so a
  moderator always decides on the complete video. Returns whether it was published;
- `publish(replaces=...)`: the run's whole ladder after an early publish: the video's render
  is swapped for the complete one (compare-and-set on the early render id: a delete, or a
  newer run, wins), its media columns with it, its status and safety record untouched.
  The early render stays in storage and served (tables.superseded_renders) for as long as a
  URL handed out for it lives, so players part-way through it and old links keep working;
  then the storage sweeper removes it.
- `publish(growing=...)`: the whole ladder of a chunked run that published a growing
  presentation while `processing` (api/jobs/progressive.py): published as above, and the
  growing render is kept served like a replaced early render (URLs handed to the owner for
  it live until then).

The outputs are stored whatever the routing says (a video in review, or rejected and then
appealed, may be published by a moderator later); only `published` is served. When the final
transaction does not happen (deleted meanwhile, another delivery won), this run's prefixes
are deleted: a reader never sees a half-published video and a job delivered twice publishes
once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from api.core import lifecycle
from api.core.db import new_id, now_ms
from api.core.keys import media_prefix, safety_prefix
from api.core.settings import Settings
from api.core.tables import superseded_renders, users, videos
from api.jobs.host import StoreHost
from api.jobs.progress import RunProgress
from api.jobs.report import summarize, without_audio
from api.safety import record as safety_record
from api.safety import routing as safety

log = logging.getLogger("reelforge.processing")


def early_render_id(run_id: str) -> str:
    """The render id of a chunked run's early presentation: named after the run (`p_…` →
    `r_…`), so the run's later jobs know the video still shows their own early render."""
    return "r_" + run_id.split("_", 1)[-1]


def publish(
    host: StoreHost,
    row: Any,
    outdir: Path,
    report: dict[str, Any],
    artifacts: Path | None = None,
    progress: RunProgress | None = None,
    *,
    early_of: str | None = None,
    replaces: str | None = None,
    growing: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> bool:
    """Store and publish (see the module doc); `early_of` is the run id of an early
    presentation, `replaces` the early render id a complete one may swap. True when the video
    row now points at these outputs."""
    analysis = report.get("analysis")
    with host.db.begin() as conn:
        routing = safety.route(conn, row.caption, analysis, host.settings)
    if early_of is not None and (routing.status != lifecycle.PUBLISHED or routing.mute):
        log.info("video %s: early presentation held back (%s)", row.id, routing.reason)
        return False
    if routing.mute:
        safety.mute(outdir)
        report = without_audio(report, outdir)
    render_id = early_render_id(early_of) if early_of is not None else new_id("r")
    prefix = media_prefix(row.id, render_id)
    frames_prefix = safety_prefix(row.id, render_id)
    if progress is not None and early_of is None:
        progress.stage("storing")
    try:
        host.storage.put_tree(prefix.rstrip("/"), outdir)
        if artifacts is not None and artifacts.is_dir():
            host.storage.put_tree(frames_prefix.rstrip("/"), artifacts)
    except BaseException:
        _discard(host, prefix, frames_prefix)
        raise
    summary = summarize(report)
    status = routing.status
    # Twice when swapping: the run's early publish may commit between the swap's
    # compare-and-set and the move's, and then the swap is the one that holds.
    for last in [False, True] if replaces is not None else [True]:
        try:
            with host.db.begin() as conn:
                if replaces is not None and _swap(conn, row.id, replaces, render_id, summary):
                    _keep_serving(conn, row.id, replaces, host.settings)
                    status = str(_status(conn, row.id))
                else:
                    _move(conn, row, routing, render_id, summary, analysis, frames_prefix)
                    if growing is not None:
                        _keep_serving(conn, row.id, growing, host.settings)
            break
        except lifecycle.TransitionError as exc:
            if not last:
                continue
            log.info("video %s not published by this run (%s); removing %s", row.id, exc, prefix)
            _discard(host, prefix, frames_prefix)
            return False
        except BaseException:
            _discard(host, prefix, frames_prefix)
            raise
    log.info("video %s %s as %s: %s", row.id, status, render_id, routing.reason)
    if progress is not None and early_of is None:
        progress.finish(status)
    if status == lifecycle.PUBLISHED and announce is not None:  # the edges warm its render
        announce(row.id)
    return True


def _move(
    conn: Any,
    row: Any,
    routing: Any,
    render_id: str,
    summary: dict[str, Any],
    analysis: dict[str, Any] | None,
    frames_prefix: str,
) -> None:
    """`processing` → the routing's status, with the outputs, in the caller's transaction."""
    published = routing.status == lifecycle.PUBLISHED
    lifecycle.move_sync(
        conn,
        row.id,
        routing.status,
        routing.reason,
        render_id=render_id,
        **({"published_at": now_ms()} if published else {}),
        **summary,
    )
    if analysis is not None:
        frames = safety_record.worst_frames(analysis.get("moderation"), frames_prefix)
        safety_record.record(conn, row.id, routing, analysis, frames)
    if published:
        conn.execute(
            update(users)
            .where(users.c.id == row.owner_id)
            .values(video_count=users.c.video_count + 1)
        )


def _swap(conn: Any, video_id: str, old: str, new: str, summary: dict[str, Any]) -> bool:
    """Point a video still showing render `old` at `new` (compare-and-set; not when deleted)."""
    moved = conn.execute(
        update(videos)
        .where(
            videos.c.id == video_id,
            videos.c.render_id == old,
            videos.c.status != lifecycle.DELETED,
        )
        .values(render_id=new, updated_at=now_ms(), **summary)
    )
    return bool(moved.rowcount == 1)


def _keep_serving(conn: Any, video_id: str, render_id: str, settings: Settings) -> None:
    """Record the replaced render: the origin serves it for as long as a URL handed out for it
    can live (tables.superseded_renders)."""
    until = now_ms() + settings.playback_token_ttl_seconds * 1000
    conn.execute(
        insert(superseded_renders).values(
            video_id=video_id, render_id=render_id, served_until=until
        )
    )


def _status(conn: Any, video_id: str) -> str | None:
    value = conn.execute(select(videos.c.status).where(videos.c.id == video_id)).scalar()
    return None if value is None else str(value)


def _discard(host: StoreHost, *prefixes: str) -> None:
    for prefix in prefixes:
        try:
            host.storage.delete_prefix(prefix)
        except Exception:  # the objects are unreachable without a row pointing at them
            log.exception("could not remove %s", prefix)
