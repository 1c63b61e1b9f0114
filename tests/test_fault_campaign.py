"""The fault test (issue 16, "A fault test in the suite"): production mode as separate
processes on real servers (two `reelforge serve`, `dramatiq` workers, a fresh PostgreSQL
database, moto's S3 server, a Redis of the test's own), six clips, and every fault at once:

1. the API killed (SIGKILL) in the middle of a tus PATCH; the upload resumed through the other
   API process;
2. a worker killed while it stores a video's outputs (its link to S3 throttled, so the store
   takes seconds): a partial render prefix stays behind;
3. a worker killed while it transcodes;
4. Redis killed and restarted empty with jobs queued, and a publish during the outage.

What must hold: every video ends `published` exactly once (history), within `BOUND_S` of the
last fault; each video's storage holds its one render and nothing else once the sweeper had its
grace (no orphan prefix, no incomplete multipart upload); no job left on record; the resumed
upload is the file byte for byte. Redis's own redelivery is held off (a 10-minute broker
heartbeat): what recovers jobs is the outbox, its relay and the job lease. The recovery times
are printed (`pytest -s`).
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from api.core.services import make_storage
from api.core.settings import Settings
from cdn.storage import S3Storage, Storage
from tests.conftest import MEDIA
from tests.support.e2e import Account, Flow
from tests.support.ownredis import OwnRedis
from tests.support.services import (
    ApiProcess,
    WorkerProcess,
    free_port,
    fresh_postgres_database,
    production_env,
    start_moto,
)
from tests.support.throttle import ThrottledRelay
from tests.support.uploads import small_clip, stored_upload

STORED_CLIP, SLOW_CLIP = "edts.mp4", "cockatoo.mp4"
QUEUED_CLIPS = ("sar_2x1.mp4", "rotate-buck-bunny.mp4", "edts.mp4")
RECOVERY_S = 60.0  # each fault's job claimed again within this
BOUND_S = 180.0  # every video published within this of the last fault (Redis's restart)
GRACE_S = 20  # the sweeper's grace: a prefix older than this with no row is an orphan
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
CHUNK = 32 * 1024


def media(name: str) -> Path:
    path = MEDIA / name
    assert path.is_file(), f"real test media missing: {path}"
    return path


class Campaign:
    def __init__(self, stack: ExitStack, tmp_path: Path) -> None:
        self.tmp_path, self.stack = tmp_path, stack
        self.redis = stack.enter_context(OwnRedis(tmp_path / "redis"))
        moto, endpoint = start_moto()
        stack.callback(moto.stop)
        self.slow_link = stack.enter_context(ThrottledRelay(endpoint, 64 * 1024))
        self.database_url = stack.enter_context(fresh_postgres_database())
        self.env = production_env(
            tmp_path / "data",
            database_url=self.database_url,
            redis_url=self.redis.url,
            s3_endpoint=endpoint,
            REELFORGE_BROKER_HEARTBEAT_MS="600000",
            REELFORGE_JOB_LEASE_SECONDS="5",
            REELFORGE_JOB_ACK_SECONDS="10",
            REELFORGE_CHUNK_THRESHOLD_SECONDS="0",
            REELFORGE_STORAGE_SWEEP_INTERVAL_SECONDS="3",
            REELFORGE_STORAGE_GRACE_SECONDS=str(GRACE_S),
        )
        self.settings = Settings.from_env(self.env)
        self.storage: Storage = make_storage(self.settings)
        self.apis = [self._api("a"), self._api("b")]
        self.workers: dict[str, WorkerProcess] = {}

    def _api(self, name: str) -> ApiProcess:
        api = self.stack.enter_context(
            ApiProcess(self.env, free_port(), self.tmp_path / f"api-{name}.log")
        )
        api.start()
        return api

    def worker(self, name: str, slow: bool = False) -> WorkerProcess:
        env = {**self.env, "REELFORGE_S3_ENDPOINT": self.slow_link.endpoint} if slow else self.env
        worker = self.stack.enter_context(WorkerProcess(env, self.tmp_path / f"{name}.log"))
        worker.start()
        self.workers[name] = worker
        return worker

    def row(self, video_id: str) -> Any:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(
                "SELECT status, attempts, render_id FROM videos WHERE id = %s", (video_id,)
            ).fetchone()

    def stage(self, video_id: str) -> str | None:
        """The video's processing stage (api/core/progress.py), as its job last wrote it."""
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(
                "SELECT stage FROM video_progress WHERE video_id = %s", (video_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def scalar(self, sql: str) -> Any:
        with psycopg.connect(self.database_url) as conn:
            row = conn.execute(sql).fetchone()  # type: ignore[arg-type]
            return None if row is None else row[0]

    def logs(self) -> str:
        tails = [f"--- {name}\n{w.log_tail(15)}" for name, w in self.workers.items()]
        return "\n".join([*tails, f"--- api b\n{self.apis[1].log_tail(15)}"])

    def renders(self, prefix: str, video_id: str) -> set[str]:
        return {info.key.split("/")[2] for info in self.storage.list(f"{prefix}/{video_id}/")}

    def multipart_uploads(self) -> list[str]:
        assert isinstance(self.storage, S3Storage)
        page = self.storage.client._list_multipart_uploads(self.storage.bucket)
        return [upload.object_name for upload in page.uploads]


@pytest.fixture
def campaign(tmp_path: Path) -> Iterator[Campaign]:
    with ExitStack() as stack:
        yield Campaign(stack, tmp_path)


def until(what: str, check: Callable[[], bool], bound_s: float, why: Callable[[], str]) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < bound_s, f"{what}: not within {bound_s} s\n{why()}"
        time.sleep(0.1)
    return time.monotonic() - start


def tus_killed_mid_patch(c: Campaign, who: Account, path: Path) -> tuple[str, float]:
    """Create a tus upload through API a, SIGKILL a in the middle of a PATCH, resume through
    API b from the offset it reports; the video id and how long the resume took."""
    first, second = c.apis
    data = path.read_bytes()
    with httpx.Client(base_url=first.url, timeout=30) as one:
        created = one.post(
            "/v1/uploads/tus", headers={**TUS, **who.headers, "Upload-Length": str(len(data))}
        )
        assert created.status_code == 201, created.text
        location = urlsplit(created.headers["Location"]).path
        headers = {**TUS, **OCTETS, **who.headers}
        done = one.patch(location, content=data[:CHUNK], headers={**headers, "Upload-Offset": "0"})
        assert done.status_code == 204, done.text
    conn = http.client.HTTPConnection(urlsplit(first.url).netloc, timeout=30)
    conn.putrequest("PATCH", location)
    for name, value in {
        **headers,
        "Upload-Offset": str(CHUNK),
        "Content-Length": str(CHUNK),
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(data[CHUNK : CHUNK + CHUNK // 2])  # half a chunk, then the process dies
    time.sleep(1.0)
    first.kill()
    killed = time.monotonic()
    assert isinstance(conn.sock, socket.socket)
    conn.sock.close()
    with httpx.Client(base_url=second.url, timeout=30) as two:
        while True:
            head = two.head(location, headers={**TUS, **who.headers})
            assert head.status_code == 200, head.text
            offset = int(head.headers["Upload-Offset"])
            answer = two.patch(
                location, content=data[offset:], headers={**headers, "Upload-Offset": str(offset)}
            )
            if answer.status_code != 409:
                break
            assert time.monotonic() - killed < RECOVERY_S, "the resume never took over"
            time.sleep(0.25)
    assert answer.status_code == 204, answer.text
    return location.rsplit("/", 1)[-1], time.monotonic() - killed


def test_every_fault_at_once_publishes_every_video_once_and_leaves_nothing(
    campaign: Campaign, tmp_path: Path
) -> None:
    c = campaign
    times: dict[str, float] = {}
    slow = c.worker("w-slow", slow=True)  # the only worker: it takes the first job
    with Flow(c.apis[1].url) as flow:
        creator = flow.register()
        stored = flow.upload_direct(creator, media(STORED_CLIP))
        transcoded = flow.upload_direct(creator, media(SLOW_CLIP))
        queued = [flow.upload_direct(creator, media(name)) for name in QUEUED_CLIPS]
        clip = small_clip(tmp_path)
        resumed, times["API killed mid-upload: resume took over"] = tus_killed_mid_patch(
            c, creator, clip
        )
        videos = [stored, transcoded, *queued, resumed]

        # 2. A worker killed mid-store.
        flow.publish(creator, stored, caption="killed mid-store")
        until("the store to begin", lambda: c.renders("media", stored) != set(), 240, c.logs)
        slow.kill()
        killed = time.monotonic()
        c.slow_link.wait_idle(120)  # what the dead worker had sent still arrives
        partial = c.renders("media", stored)
        assert len(partial) == 1 and c.row(stored)[0] == "processing", c.logs()
        c.worker("w1")
        until("its job's retry", lambda: c.row(stored)[1] >= 2, RECOVERY_S, c.logs)
        times["worker killed mid-store: job claimed again"] = time.monotonic() - killed
        flow.wait_status(stored, creator, deadline_s=BOUND_S)

        # 3. A worker killed mid-transcode (w2 is up and idle: the retry is its).
        flow.publish(creator, transcoded, caption="killed mid-transcode")
        w1 = c.workers["w1"]
        until("the transcode", lambda: c.stage(transcoded) == "transcoding", 240, c.logs)
        assert c.row(transcoded)[:2] == ("processing", 1) and w1.encoder_children()
        c.worker("w2")
        time.sleep(1.0)  # well inside the encode
        w1.kill()
        killed = time.monotonic()
        until("its job's retry", lambda: c.row(transcoded)[1] >= 2, RECOVERY_S, c.logs)
        times["worker killed mid-transcode: job claimed again"] = time.monotonic() - killed

        # 4. Redis killed with jobs queued, a publish during the outage, Redis back empty.
        for video_id in queued:
            flow.publish(creator, video_id, caption="queued when Redis died")
        c.redis.kill()
        body = flow.publish(creator, resumed, caption="published while Redis is down")
        assert body["status"] == "processing", body  # 202, not 503; not failed
        time.sleep(2.0)
        c.redis.start()
        back = time.monotonic()
        for video_id in videos:  # all within BOUND_S of Redis's return, not each
            left = max(1.0, BOUND_S - (time.monotonic() - back))
            video = flow.wait_status(video_id, creator, deadline_s=left)
            assert video["status"] == "published", (video_id, video["status_reason"], c.logs())
        times["Redis restarted empty: every video published"] = time.monotonic() - back
        assert times["Redis restarted empty: every video published"] <= BOUND_S, times

        # Every video published exactly once, its one render kept, nothing else left.
        for video_id in videos:
            history = flow.http.get(f"/v1/videos/{video_id}/history", headers=creator.headers)
            moves = [entry["to_status"] for entry in history.json()["history"]]
            assert moves.count("published") == 1 and "failed" not in moves, (video_id, moves)
        attempts = {video_id: c.row(video_id)[1] for video_id in videos}
        assert attempts[stored] == 2 and attempts[transcoded] == 2, attempts

        def clean() -> bool:
            return c.multipart_uploads() == [] and all(
                c.renders("media", v) == {c.row(v)[2]} and c.renders("safety", v) <= {c.row(v)[2]}
                for v in videos
            )

        swept = until("the sweeper to leave one render per video", clean, BOUND_S, c.logs)
        times["orphans swept (grace included) after all were published"] = swept
        assert partial.isdisjoint(c.renders("media", stored))
        assert c.scalar("SELECT count(*) FROM video_jobs") == 0  # no job left on record
        assert c.scalar("SELECT count(*) FROM videos WHERE status <> 'published'") == 0
        assert stored_upload(c.storage, resumed) == clip.read_bytes()  # no upload lost
    print("\n" + "\n".join(f"{what}: {took:.1f} s" for what, took in times.items()))
