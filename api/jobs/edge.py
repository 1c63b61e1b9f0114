"""The edge jobs (issue 4, "CDN pre-warm hooks"): pre-warm a published video at a configured
edge, and purge a deleted or taken-down video from the edges' caches.

worker.py runs them as Dramatiq actors on their own queue (`edge`), so a transcode never
waits behind them and they never wait behind a transcode; payloads carry ids and the edge's
URL only, and each job reloads the video and checks the edge against the configuration.

- `prewarm(video_id, edge_url)`: only for a published public video (private and unlisted
  media are signed per viewer and never stored by an edge). The files to warm come from the
  video's own stored files (`cdn.prewarm.plan_warm`), the URLs from the configured edge
  (`cdn.hooks.media_url`), and at most `prewarm_concurrency` warms run at once in a process.
  An edge error raises `EdgeUnavailable`, which the actor retries with backoff.
- `purge(video_id)`: `settings.edge_purge` picks the hook: "files" removes the video's
  entries from the nginx cache directories in `edge_cache_dirs` (`NginxCachePurge`), "none"
  leaves the edges to their own expiry.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import select

from api.core.keys import media_prefix
from api.core.settings import Settings
from api.core.tables import videos
from api.core.visibility import is_warmed
from api.jobs.transcode import Runtime
from cdn.hooks import (
    Edge,
    Fetched,
    HttpWarmHook,
    NginxCachePurge,
    NoPurge,
    PurgeHook,
    WarmHook,
    check_ids,
    media_url,
    parse_edge,
)
from cdn.prewarm import WarmPlan, plan_warm

log = logging.getLogger("reelforge.edge")


def build_purge_hook(settings: Settings) -> PurgeHook:
    if settings.edge_purge == "files":
        return NginxCachePurge([Path(d) for d in settings.edge_cache_dirs])
    return NoPurge()


class EdgeJobs:
    """What the `prewarm_video` and `purge_video` actors call; one per worker process."""

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime,
        *,
        warm_hook: WarmHook | None = None,
        purge_hook: PurgeHook | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.edges: dict[str, Edge] = {}
        for url in settings.edges:
            edge = parse_edge(url)
            self.edges[edge.url] = edge
        self.warm_hook: WarmHook = warm_hook or HttpWarmHook()
        self.purge_hook: PurgeHook = purge_hook or build_purge_hook(settings)
        self._slots = threading.BoundedSemaphore(max(1, settings.prewarm_concurrency))

    @property
    def purging(self) -> bool:
        return self.settings.edge_purge != "none"

    def prewarm(self, video_id: str, edge_url: str) -> list[Fetched]:
        """Warm one video at one configured edge; [] when there is nothing to do."""
        edge = self.edges.get(edge_url)
        if edge is None:
            log.warning("pre-warm of %r at %r skipped: not a configured edge", video_id, edge_url)
            return []
        check_ids(video_id)
        render_id = self._warmable_render(video_id)
        if render_id is None:
            log.info("pre-warm of video %s skipped: not a published public video", video_id)
            return []
        plan = self.plan(video_id, render_id)
        if plan.refused:
            log.warning("pre-warm of video %s: refused %s", video_id, plan.refused)
        urls = [media_url(edge, video_id, render_id, name) for name in plan.names]
        with self._slots:
            results = self.warm_hook.warm(edge, urls)
        summary = ", ".join(f"{r.status} {r.cache_status or '-'}" for r in results)
        log.info("pre-warmed video %s at %s: %d file(s) (%s)", video_id, edge.url, len(results),
                 summary)  # fmt: skip
        return results

    def plan(self, video_id: str, render_id: str) -> WarmPlan:
        """The names to warm, from the render's stored files (listing and playlists)."""
        check_ids(video_id, render_id)
        prefix = media_prefix(video_id, render_id)
        storage = self.runtime.storage
        listing = {info.key[len(prefix) :] for info in storage.list(prefix)}

        def read(name: str) -> str:
            return b"".join(storage.open_range(prefix + name)).decode("utf-8", "replace")

        return plan_warm(read, listing)

    def purge(self, video_id: str) -> int:
        """Remove every cached file of the video from the edges (see `build_purge_hook`)."""
        check_ids(video_id)
        removed = self.purge_hook.purge(video_id)
        log.info("purged video %s from the edges: %d cached file(s) removed", video_id, removed)
        return removed

    def _warmable_render(self, video_id: str) -> str | None:
        query = select(videos.c.status, videos.c.render_id, videos.c.privacy).where(
            videos.c.id == video_id
        )
        with self.runtime.db.connect() as conn:
            row: Any = conn.execute(query).first()
        if row is None or not is_warmed(row.status, row.privacy):
            return None
        return str(row.render_id) if row.render_id else None
