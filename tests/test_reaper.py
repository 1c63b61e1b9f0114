"""The stale-job reaper: a processing video whose broker message was lost gets a new one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from api.core.context import AppContext
from api.core.db import now_ms, sync_engine
from api.core.tables import videos
from api.jobs.reaper import requeue_stale, stale_after_ms
from tests.support.api import api_client, register, seed_video
from tests.support.pg import fresh_database
from tests.support.services import redis_database
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


def test_production_api_runs_the_reaper_on_its_interval(tmp_path: Path) -> None:
    """In production the API processes run the reaper themselves (embedded mode re-enqueues
    at start instead); two processes on one database enqueue a lost job once."""
    with fresh_database() as database_url, redis_database() as redis_url:
        production = {
            "mode": "production",
            "database_url": database_url,
            "redis_url": redis_url,
            "secret_key": "reaper-test-secret",
            "transcode_time_limit_s": 60,
            "reaper_interval_seconds": 0.5,
        }
        with (
            api_client(tmp_path / "a", **production) as first,
            api_client(tmp_path / "b", **production) as second,
        ):
            ctx: AppContext = first.app.state.ctx
            owner, _ = register(first)
            lost = seed_video(ctx.settings, owner, status="processing")
            old = now_ms() - stale_after_ms(ctx) - 1000
            jobs = [record_jobs(first.app), record_jobs(second.app)]
            engine = sync_engine(ctx.settings)
            with engine.begin() as conn:
                conn.execute(update(videos).where(videos.c.id == lost).values(updated_at=old))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    stamp = conn.execute(
                        select(videos.c.updated_at).where(videos.c.id == lost)
                    ).scalar()
                if stamp is not None and stamp > old:
                    break
                time.sleep(0.1)
            time.sleep(1.2)  # two more intervals: nothing is enqueued twice
            engine.dispose()
    assert stamp is not None and stamp > old, "no reaper ran within 10 s"
    enqueued = [call for recorder in jobs for call in recorder.of("transcode_video")]
    assert enqueued == [(lost,)]


@pytest.mark.parametrize(("interval", "running"), [(0, False), (300, True)])
def test_reaper_interval_zero_turns_it_off(tmp_path: Path, interval: float, running: bool) -> None:
    with (
        fresh_database() as database_url,
        redis_database() as redis_url,
        api_client(
            tmp_path,
            mode="production",
            database_url=database_url,
            redis_url=redis_url,
            secret_key="reaper-test-secret",
            reaper_interval_seconds=interval,
        ) as client,
    ):
        tasks = client.blocking_portal.call(_task_names)
    assert any("reaper_loop" in name for name in tasks) is running


async def _task_names() -> list[str]:
    import asyncio

    return [repr(task.get_coro()) for task in asyncio.all_tasks()]
