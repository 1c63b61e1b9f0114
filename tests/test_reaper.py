"""The stale-job reaper: a processing video whose broker message was lost gets a new one."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from api.context import AppContext
from api.db import now_ms, sync_engine
from api.reaper import requeue_stale, stale_after_ms
from api.tables import videos
from tests.support.api import api_client, register, seed_video
from tests.support.uploads import record_jobs


def test_only_claims_older_than_any_job_are_requeued_once(tmp_path: Path) -> None:
    with api_client(tmp_path, transcode_time_limit_s=60) as client:
        ctx: AppContext = client.app.state.ctx
        owner, _ = register(client)
        lost = seed_video(ctx.settings, owner, status="processing")
        running = seed_video(ctx.settings, owner, status="processing")
        published = seed_video(ctx.settings, owner, status="published")
        old = now_ms() - stale_after_ms(ctx) - 1000
        engine = sync_engine(ctx.settings)
        with engine.begin() as conn:
            conn.execute(
                update(videos).where(videos.c.id.in_([lost, published])).values(updated_at=old)
            )
        # Keep the in-process worker from picking the message up: we only look at it.
        ctx.jobs.stop()
        jobs = record_jobs(client.app)
        first = client.blocking_portal.call(requeue_stale, ctx)
        second = client.blocking_portal.call(requeue_stale, ctx)
        with engine.connect() as conn:
            touched = conn.execute(select(videos.c.updated_at).where(videos.c.id == lost)).scalar()
        engine.dispose()
    assert first == [lost]
    assert second == []  # the claim was refreshed: a second reaper does not enqueue it again
    assert jobs.of("transcode_video") == [(lost,)]
    assert running not in first and published not in first
    assert touched is not None and touched > old
