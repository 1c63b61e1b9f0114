"""The run reaper's choice (api/jobs/partreaper.py; issue 15, "a killed chunk is redone
alone"): which parts of which runs it sends again, and only once. The API app in production
mode on PostgreSQL and Redis, rows written straight into `video_parts`, the messages it hands
the broker recorded (no worker runs). tests/test_part_leases.py runs the same reaper against
real workers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from api.core.context import AppContext
from api.core.db import new_id, now_ms, sync_engine
from api.core.tables import video_parts
from api.jobs.partreaper import redispatch_lapsed, stale_after_ms
from api.jobs.publish import early_render_id
from tests.support.api import api_client, register, seed_video
from tests.support.pg import fresh_database
from tests.support.services import redis_database
from tests.support.uploads import record_jobs


def test_the_reaper_sends_again_what_no_worker_holds_once(tmp_path: Path) -> None:
    with (
        fresh_database() as database_url,
        redis_database() as redis_url,
        api_client(
            tmp_path,
            mode="production",
            database_url=database_url,
            redis_url=redis_url,
            secret_key="part-reaper-test-secret",
            part_reaper_interval_seconds=0,  # this test calls it
        ) as client,
    ):
        ctx: AppContext = client.app.state.ctx
        lease_ms = int(ctx.settings.part_lease_s * 1000)
        now = now_ms()
        lapsed, fresh, stale = now - lease_ms - 1000, now, now - stale_after_ms(ctx) - 1000
        owner, _ = register(client)
        runs = {name: new_id("p") for name in ("live", "early", "done", "deleted", "unclaimed")}
        videos = {
            "live": seed_video(ctx.settings, owner, status="processing", render_id=""),
            "early": seed_video(ctx.settings, owner, render_id=early_render_id(runs["early"])),
            "done": seed_video(ctx.settings, owner, render_id="r_complete"),
            "deleted": seed_video(ctx.settings, owner, status="deleted", render_id=""),
            "unclaimed": seed_video(ctx.settings, owner, status="processing", render_id=""),
        }
        rows = [
            # (run, kind, index, state, attempts, updated_at)
            ("live", "chunk", 0, "pending", 1, lapsed),  # its worker died: sent
            ("live", "chunk", 1, "pending", 1, fresh),  # a heartbeat holds it
            ("live", "chunk", 2, "pending", 0, lapsed),  # maybe in a queue still
            ("live", "audio", 0, "pending", 0, stale),  # its message lost: sent
            ("live", "preview", 0, "done", 1, lapsed),
            ("live", "assembly", 0, "pending", 0, lapsed),  # parts left
            ("early", "chunk", 0, "done", 1, lapsed),
            ("early", "chunk", 1, "pending", 2, lapsed),  # published early: sent
            ("early", "playable", 0, "done", 1, lapsed),
            ("early", "assembly", 0, "pending", 0, lapsed),
            ("done", "chunk", 0, "pending", 1, lapsed),  # another render shown: not its run
            ("done", "assembly", 0, "claimed", 1, lapsed),
            ("deleted", "chunk", 0, "pending", 1, lapsed),  # deleted
            ("unclaimed", "chunk", 0, "done", 1, lapsed),
            ("unclaimed", "audio", 0, "done", 1, lapsed),
            ("unclaimed", "assembly", 0, "pending", 0, lapsed),  # nobody claimed it: sent
        ]
        engine = sync_engine(ctx.settings)
        with engine.begin() as conn:
            conn.execute(
                insert(video_parts),
                [
                    {"video_id": videos[run], "run_id": runs[run], "kind": kind, "part": index,
                     "state": state, "attempts": attempts, "updated_at": at}
                    for run, kind, index, state, attempts, at in rows
                ],
            )  # fmt: skip
        engine.dispose()
        jobs = record_jobs(client.app)
        first = client.blocking_portal.call(redispatch_lapsed, ctx)
        second = client.blocking_portal.call(redispatch_lapsed, ctx)
    expected = {
        (videos["live"], runs["live"], "chunk", 0),
        (videos["live"], runs["live"], "audio", 0),
        (videos["early"], runs["early"], "chunk", 1),
        (videos["unclaimed"], runs["unclaimed"], "assembly", 0),
    }
    assert set(first) == expected and len(first) == len(expected)
    assert second == []  # once per part and attempt
    sent = {*jobs.of("transcode_part"), *((v, r, "assembly", 0) for v, r in jobs.of("assemble"))}
    assert sent == expected


def test_parts_never_started_are_sent_again_at_once_when_redis_lost_its_data(
    tmp_path: Path,
) -> None:
    """Issue 16: a chunk message lost with a Redis restarted empty is not left to the stale
    margin: the job relay (api/jobs/relay.py) finds the broker's epoch gone and has every part
    never started sent again at once; a started part whose lease is held is not."""
    import redis

    from api.jobs.relay import EPOCH_KEY
    from tests.support.jobs import wait_for

    with (
        fresh_database() as database_url,
        redis_database() as redis_url,
        api_client(
            tmp_path,
            mode="production",
            database_url=database_url,
            redis_url=redis_url,
            secret_key="part-reaper-test-secret",
            part_reaper_interval_seconds=0,  # only the relay sends here
        ) as client,
    ):
        ctx: AppContext = client.app.state.ctx
        broker = redis.Redis.from_url(redis_url)
        wait_for(lambda: broker.get(EPOCH_KEY) is not None, 30, "the relay's first epoch")
        owner, _ = register(client)
        video, run = seed_video(ctx.settings, owner, status="processing", render_id=""), new_id("p")
        now = now_ms()
        engine = sync_engine(ctx.settings)
        with engine.begin() as conn:
            conn.execute(
                insert(video_parts),
                [
                    {"video_id": video, "run_id": run, "kind": "chunk", "part": index,
                     "state": "pending", "attempts": attempts, "updated_at": now}
                    for index, attempts in ((0, 0), (1, 1))  # queued; held by a live worker
                ],
            )  # fmt: skip
        engine.dispose()
        jobs = record_jobs(client.app)
        assert client.blocking_portal.call(redispatch_lapsed, ctx) == []  # young: left alone
        broker.delete(EPOCH_KEY)  # what a Redis restarted empty looks like to the relay
        wait_for(lambda: jobs.of("transcode_part") != [], 30, "the chunk sent again")
        broker.close()
    assert jobs.of("transcode_part") == [(video, run, "chunk", 0)]
