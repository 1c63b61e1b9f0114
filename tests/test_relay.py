"""The job outbox's relay and the single-pass job's lease, pass by pass (issue 16, item 5;
api/jobs/relay.py, api/jobs/joblease.py), on real PostgreSQL and Redis: what a pass sends,
what it leaves alone, and when it sends again. The processes and the faults are in
tests/test_job_outbox.py; here a pass's sends are recorded instead of going to a broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from api.core.db import now_ms
from api.core.outbox import CLAIMED, QUEUED, queue_job
from api.core.tables import video_jobs, video_parts, videos
from api.jobs import joblease
from api.jobs.relay import EPOCH_KEY, Outbox
from tests.support.jobs import insert_processing_video, insert_user
from tests.support.pg import schema_engine
from tests.support.services import redis_database

ACK_S, LEASE_S = 30.0, 30.0


@pytest.fixture
def db() -> Iterator[Engine]:
    with schema_engine() as engine:
        yield engine


@pytest.fixture
def redis() -> Iterator[Any]:
    import redis as redislib

    with redis_database() as url:
        client = redislib.Redis.from_url(url)
        yield client
        client.close()


class Sends:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def __call__(self, video_id: str, lane: str) -> None:
        self.sent.append((video_id, lane))


def put(db: Engine, video_id: str, lane: str = "normal") -> None:
    with db.begin() as conn:
        conn.execute(queue_job(conn.dialect.name, video_id, lane))


def set_job(db: Engine, video_id: str, **values: Any) -> None:
    with db.begin() as conn:
        conn.execute(update(video_jobs).where(video_jobs.c.video_id == video_id).values(**values))


def job(db: Engine, video_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(video_jobs).where(video_jobs.c.video_id == video_id)).first()


def test_unsent_jobs_are_sent_once_and_again_when_redis_lost_its_data(
    db: Engine, redis: Any
) -> None:
    sends = Sends()
    outbox = Outbox(lambda: db, sends, redis, ACK_S, LEASE_S)
    owner = insert_user(db)
    vid = insert_processing_video(db, owner, 10, lane="bulk")
    put(db, vid, "bulk")

    first = outbox.relay()
    assert first.fresh and first.sent == [vid] and sends.sent == [(vid, "bulk")]
    assert outbox.relay().sent == []  # sent under this epoch, not yet due again
    assert (job(db, vid).sends, job(db, vid).state) == (1, QUEUED)

    redis.delete(EPOCH_KEY)  # what a Redis restarted empty looks like to the relay
    again = outbox.relay()
    assert again.fresh and again.sent == [vid] and job(db, vid).sends == 2
    assert again.epoch != first.epoch


def test_the_publishes_own_send_needs_an_epoch_and_sends_only_its_video(
    db: Engine, redis: Any
) -> None:
    sends = Sends()
    outbox = Outbox(lambda: db, sends, redis, ACK_S, LEASE_S)
    owner = insert_user(db)
    one, other = (insert_processing_video(db, owner, 10) for _ in range(2))
    put(db, one)
    put(db, other)
    assert outbox.relay(only=one, create_epoch=False).sent == []  # no epoch yet: the loop's
    outbox.epoch(create=True)
    assert outbox.relay(only=one, create_epoch=False).sent == [one]
    assert job(db, other).sent_at is None


def test_an_unclaimed_job_is_sent_again_after_the_ack_time_then_twice_that(
    db: Engine, redis: Any
) -> None:
    sends = Sends()
    outbox = Outbox(lambda: db, sends, redis, ACK_S, LEASE_S)
    owner = insert_user(db)
    vid = insert_processing_video(db, owner, 10)
    put(db, vid)
    outbox.relay()
    ack_ms = int(ACK_S * 1000)

    set_job(db, vid, sent_at=now_ms() - ack_ms - 1000)
    assert outbox.relay().sent == [vid]  # the first wait: one ack time
    set_job(db, vid, sent_at=now_ms() - ack_ms - 1000)
    assert outbox.relay().sent == []  # the second: twice that
    set_job(db, vid, sent_at=now_ms() - 2 * ack_ms - 1000)
    assert outbox.relay().sent == [vid]
    assert job(db, vid).sends == 3 and len(sends.sent) == 3


def test_a_held_job_is_left_alone_until_its_lease_lapses(db: Engine, redis: Any) -> None:
    sends = Sends()
    outbox = Outbox(lambda: db, sends, redis, ACK_S, LEASE_S)
    owner = insert_user(db)
    vid = insert_processing_video(db, owner, 10)
    put(db, vid)
    outbox.relay()
    claimed = joblease.claim(db, vid, LEASE_S)
    assert claimed is not None and claimed[1] == 1
    assert joblease.claim(db, vid, LEASE_S) is None  # a duplicate delivery is skipped
    assert (job(db, vid).state, job(db, vid).attempt) == (CLAIMED, 1)

    set_job(db, vid, sent_at=0)  # long sent: only the lease counts once claimed
    assert outbox.relay().sent == []
    set_job(db, vid, heartbeat_at=now_ms() - int(LEASE_S * 1000) - 1000)  # its worker died
    assert outbox.relay().sent == [vid]
    assert job(db, vid).state == QUEUED
    retried = joblease.claim(db, vid, LEASE_S)
    assert retried is not None and retried[1] == 2
    joblease.finish(db, vid, 1)  # the dead attempt's finish (it was not dead after all)
    assert job(db, vid) is not None  # ... does not take the live attempt's row away
    joblease.finish(db, vid, 2)
    assert job(db, vid) is None


def test_a_heartbeat_keeps_the_lease(db: Engine) -> None:
    lease_s = 2.0
    owner = insert_user(db)
    vid = insert_processing_video(db, owner, 10)
    put(db, vid)
    assert joblease.claim(db, vid, lease_s) is not None
    with joblease.holding(db, vid, 1, lease_s):
        time.sleep(2.5 * lease_s)  # without a beat the lease would have lapsed twice
        assert joblease.claim(db, vid, lease_s) is None
        assert job(db, vid).heartbeat_at > now_ms() - lease_s * 1000
    time.sleep(lease_s + 0.5)  # the block is over: no beat any more
    assert joblease.claim(db, vid, lease_s) is not None


def test_orphans_are_put_on_record_and_ended_jobs_dropped(db: Engine, redis: Any) -> None:
    """A `processing` video with no job and no open part (from before the outbox) is put on
    record; one in a chunked run, or one changed lately, is not; the job of a video that
    left `processing` is dropped."""
    sends = Sends()
    outbox = Outbox(lambda: db, sends, redis, ACK_S, LEASE_S)
    owner = insert_user(db)
    lost, recent, chunked, ended = (insert_processing_video(db, owner, 10) for _ in range(4))
    old = now_ms() - 2 * int(LEASE_S * 1000) - 1000
    with db.begin() as conn:
        conn.execute(
            update(videos).where(videos.c.id.in_([lost, chunked, ended])).values(updated_at=old)
        )
        conn.execute(update(videos).where(videos.c.id == ended).values(status="published"))
        conn.execute(
            insert(video_parts).values(
                video_id=chunked, run_id="run", kind="chunk", part=0, state="pending",
                attempts=0, updated_at=old,
            )
        )  # fmt: skip
    put(db, ended)

    relayed = outbox.relay()
    assert relayed.adopted == [lost] and relayed.sent == [lost]
    assert job(db, ended) is None and job(db, recent) is None and job(db, chunked) is None
    # A delivery of a chunked run's late duplicate finds no job and no adoption.
    assert joblease.claim(db, chunked, LEASE_S) is None
