"""A new for-you snapshot pre-warms the edges with its top videos (issue 4, pre-warm hooks)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from api.core.context import AppContext
from api.feed.store import WARM_TOP
from tests.support.api import api_client, register, seed_video
from tests.support.s3 import free_port
from tests.support.uploads import record_jobs


def test_snapshot_rebuild_warms_its_top_videos_at_every_edge(tmp_path: Path) -> None:
    edges = (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    with api_client(tmp_path, edges=edges) as client:
        ctx: AppContext = client.app.state.ctx
        ctx.jobs.stop()  # only look at what is enqueued (the edges don't exist)
        jobs = record_jobs(client.app)
        owners = [register(client)[0] for _ in range(3)]
        ids = [
            seed_video(ctx.settings, owners[i % 3], like_count=100 - i, impression_count=200)
            for i in range(WARM_TOP + 5)
        ]
        response = client.get("/v1/feed", params={"type": "for_you"})
        assert response.status_code == 200
    warmed = jobs.of("prewarm_video")
    warmed_ids = {args[0] for args in warmed}
    assert len(warmed) == WARM_TOP * len(edges)
    assert warmed_ids <= set(ids) and len(warmed_ids) == WARM_TOP
    # Edges are normalized to their media base URL; every configured edge got the jobs.
    assert {urlsplit(args[1]).netloc for args in warmed} == {urlsplit(e).netloc for e in edges}
