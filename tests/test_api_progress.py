"""`GET /v1/videos/{id}` reports processing progress (issue 15, "Progress"): a real clip
published through the embedded app (SQLite, local storage, the in-process worker running the
real engine), watched while it processes, by its owner and by others; and the CLI's progress
bar drawn from it."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import select

from api.core import progress
from api.core.db import sync_engine
from api.core.tables import video_progress
from api.videos.schemas import processing_out
from cli.demo import _demo_upload, wait_for_video
from cli.media import ProgressBar
from tests.conftest import MEDIA
from tests.support.api import api_client, auth, register, upload_and_publish
from tests.support.uploads import context, live_server

# 14 s of 1280x720 camera footage: ~16 s of processing on two CPUs, so the poll below sees
# every long stage and the ETA (which needs 3 s of signal) several times over.
CLIP = MEDIA / "cockatoo.mp4"
POLL_S = 0.1


def _watch(client: TestClient[Any], video_id: str, owner: str, other: str) -> list[Any]:
    """Every owner's view until the video leaves `processing`; others never see it."""
    seen: list[Any] = []
    deadline = time.monotonic() + 300
    while True:
        body = client.get(f"/v1/videos/{video_id}", headers=auth(owner)).json()
        if body["status"] != "processing":
            seen.append(body)
            return seen
        assert body["processing"] is not None, body
        body["processing"]["polled_ms"] = int(time.time() * 1000)
        seen.append(body)
        for headers in (auth(other), {}):
            hidden = client.get(f"/v1/videos/{video_id}", headers=headers)
            if hidden.status_code == 200:  # published in between the two reads
                assert hidden.json()["processing"] is None
            else:
                assert hidden.status_code == 404 and "processing" not in hidden.json()
        assert time.monotonic() < deadline, "the video never left processing"
        time.sleep(POLL_S)


def test_the_owner_watches_a_real_clip_process(tmp_path: Path) -> None:
    assert CLIP.is_file(), f"real test media missing: {CLIP}"
    with api_client(tmp_path) as client:
        _, owner = register(client)
        _, other = register(client)
        video_id = upload_and_publish(client, owner, CLIP.read_bytes())
        views = _watch(client, video_id, owner, other)
        final, running = views[-1], [v["processing"] for v in views[:-1]]

        assert final["status"] == "published", final["status_reason"]
        assert final["processing"] is None
        as_other = client.get(f"/v1/videos/{video_id}", headers=auth(other)).json()
        assert as_other["status"] == "published" and as_other["processing"] is None
        settings = context(client.app).settings

    # Stages in the job's order, the long ones seen; percent never goes back.
    stages = [view["stage"] for view in running]
    ranks = [progress.rank(stage) for stage in stages]
    assert ranks == sorted(ranks), stages
    assert {"probing", "transcoding"} <= set(stages), stages
    percents = [view["percent"] for view in running]
    assert percents == sorted(percents), percents
    assert all(0.0 <= value <= 100.0 for value in percents)
    assert any(15.0 < value < 80.0 for value in percents), percents  # frames were counted
    # One part; counted done once the frames are out.
    assert {view["parts_total"] for view in running} == {1}
    for view in running:
        counted = progress.rank(view["stage"]) > progress.rank(progress.TRANSCODING)
        assert view["parts_done"] == (1 if counted else 0), view
    # The ETA: none without signal; seconds once there is, counting down while frames come.
    assert all(view["eta_s"] is None for view in running if view["percent"] < 5.0)
    # Every read with enough signal (5 % done, 3 s in; a second of slack for the clock
    # between the worker's write and this read) has one; cockatoo runs far longer than that.
    signal = [
        view
        for view in running
        if view["percent"] >= 10.0
        and view["started_at"] is not None
        and view["polled_ms"] - view["started_at"] >= 4_000
    ]
    assert all(view["eta_s"] is not None for view in signal), signal
    etas = [view["eta_s"] for view in running if view["eta_s"] is not None]
    assert all(isinstance(eta, int) and 0 <= eta < 600 for eta in etas), etas
    started = {view["started_at"] for view in running if view["stage"] != "queued"}
    assert len(started) == 1 and started != {None}

    # The run ended at 100 % (what the row says once the API stopped showing it).
    engine = sync_engine(settings)
    with engine.connect() as conn:
        row = conn.execute(
            select(video_progress).where(video_progress.c.video_id == video_id)
        ).one()
    engine.dispose()
    assert (row.stage, row.parts_done, row.attempt) == ("published", 1, 1)
    assert processing_out(row, row.updated_at).percent == 100.0


def test_openapi_documents_the_processing_object(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        doc = client.get("/schema/openapi.json").json()
    operation = doc["paths"]["/v1/videos/{video_id}"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/VideoDetailOut"}
    components = doc["components"]["schemas"]
    detail = components["VideoDetailOut"]["properties"]
    assert "processing" in detail and "hls_url" in detail
    fields = set(components["ProcessingOut"]["properties"])
    assert fields == {
        "stage", "parts_done", "parts_total", "percent", "eta_s", "started_at",
        "hls_url", "renditions", "playable_s",  # the growing presentation (issue 15)
    }  # fmt: skip


# ------------------------------------------------------------------------------ the CLI

SHORT_CLIP = CLIP.parent / "edts.mp4"  # 854x480, 9 s: a few seconds of processing


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_cli_draws_the_progress_while_it_waits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`cli.demo.wait_for_video` against the app on a real socket: a bar on a terminal,
    one line per stage elsewhere, and the published video at the end."""
    with live_server(tmp_path) as server:
        token = httpx.post(
            f"{server.url}/v1/auth/register",
            json={"handle": "watcher", "password": "correct horse 9"},
        ).json()["token"]
        screen = Terminal()
        drawn = _demo_upload(server.url, token, SHORT_CLIP)
        video = wait_for_video(
            server.url,
            token,
            drawn,
            time.monotonic() + 300,
            bar=ProgressBar("processing", stream=screen),
            poll_s=0.1,
        )
        assert video is not None and video["status"] == "published", video
        frames = screen.getvalue().split("\r")
        assert any("transcoding 0/1 parts" in frame for frame in frames), frames
        assert "100%" in frames[-1] and "done" in frames[-1]
        percents = [int(m) for m in re.findall(r"\] +(\d+)%", screen.getvalue())]
        assert percents == sorted(percents), percents

        capsys.readouterr()
        logged = _demo_upload(server.url, token, SHORT_CLIP)
        video = wait_for_video(server.url, token, logged, time.monotonic() + 300, poll_s=0.1)
        assert video is not None and video["status"] == "published", video
        lines = capsys.readouterr().out.splitlines()
        stages = [line.split()[3] for line in lines if line.startswith(f"demo: video {logged} ")]
        assert "transcoding" in stages and len(stages) == len(set(stages)), lines
        assert [progress.rank(s) for s in stages] == sorted(progress.rank(s) for s in stages)
