"""`reelforge serve`: settings errors exit 2 with one line, it serves, it stops on SIGTERM, and
`--demo` publishes the sample clip through the server's own API (issue 3, embedded mode)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cli.demo import FEED_CREATORS
from tests.support.services import ROOT, ApiProcess, embedded_env, free_port

BAD_SETTINGS = {
    "unknown mode": ({"REELFORGE_MODE": "staging"}, [], "REELFORGE_MODE"),
    "port not a number": ({"REELFORGE_PORT": "eighty"}, [], "REELFORGE_PORT"),
    "production without its servers": (
        {"REELFORGE_MODE": "production"},
        [],
        "REELFORGE_DATABASE_URL",
    ),
    "demo outside embedded mode": (
        {
            "REELFORGE_MODE": "production",
            "REELFORGE_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
            "REELFORGE_REDIS_URL": "redis://127.0.0.1:9/0",
            "REELFORGE_STORAGE": "s3",
            "REELFORGE_S3_ENDPOINT": "127.0.0.1:9",
            "REELFORGE_SECRET_KEY": "x" * 32,
        },
        ["--demo"],
        "--demo",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_settings_exit_2_with_one_line(case: str, tmp_path: Path) -> None:
    extra_env, args, named = BAD_SETTINGS[case]
    env = {**embedded_env(tmp_path / "data"), **extra_env}
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "serve", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert named in lines[0], lines[0]
    assert proc.stdout == ""


def test_serves_and_stops_gracefully(tmp_path: Path) -> None:
    """Flags override the environment; /healthz answers; SIGTERM stops it with exit 0."""
    flag_dir, env_dir = tmp_path / "from-flag", tmp_path / "from-env"
    port = free_port()
    env = embedded_env(env_dir, REELFORGE_PORT=str(free_port()))
    api = ApiProcess(env, port, tmp_path / "serve.log", "--data-dir", str(flag_dir))
    with api:
        api.start()
        response = httpx.get(f"{api.url}/healthz", timeout=10)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        ready = httpx.get(f"{api.url}/readyz", timeout=10).json()
        assert ready["ready"] is True, ready
        assert (flag_dir / "reelforge.db").is_file()
        assert not env_dir.exists()
        line = next(
            (row for row in api.log().splitlines() if f"serving http://127.0.0.1:{port}" in row),
            "",
        )
        assert "embedded mode" in line and str(flag_dir) in line, api.log_tail()
        started = time.monotonic()
        assert api.proc is not None
        api.proc.send_signal(signal.SIGTERM)
        code = api.proc.wait(30)
    assert code == 0, api.log_tail()
    assert time.monotonic() - started < 30
    assert "stopped on signal" in api.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api.url}/healthz", timeout=2)


def run_demo(data_dir: Path, log_path: Path) -> dict[str, str]:
    """`serve --demo` until it prints where to play; the printed token, id and the video."""
    api = ApiProcess(embedded_env(data_dir), free_port(), log_path, "--demo", "--demo-seconds", "2")
    with api:
        api.start()
        deadline = time.monotonic() + 240
        while "demo: play" not in api.log() and "demo: failed" not in api.log():
            assert api.running(), api.log_tail()
            assert time.monotonic() < deadline, api.log_tail()
            time.sleep(0.5)
        log = api.log()
        assert "demo: failed" not in log, api.log_tail()
        token = re.search(r"demo: account 'demo', token (\S+)", log)
        video = re.search(r"demo: video (v_\w+) published", log)
        assert token and video, api.log_tail()
        body = httpx.get(
            f"{api.url}/v1/videos/{video.group(1)}",
            headers={"Authorization": f"Bearer {token.group(1)}"},
            timeout=10,
        ).json()
        assert body["status"] == "published"
        assert body["author"]["handle"] == "demo"
        master = httpx.get(body["hls_url"], timeout=10)
        assert master.status_code == 200 and master.text.startswith("#EXTM3U")
        return {"token": token.group(1), "video_id": video.group(1), "author": body["author"]["id"]}


def test_demo_publishes_the_sample_clip(tmp_path: Path) -> None:
    """`serve --demo` registers `demo`, uploads + publishes a sample clip and prints the token
    and video id; the printed token is accepted and the video plays from its hls_url. Run
    again on the same data dir, it signs the same account in instead of registering it."""
    data_dir = tmp_path / "data"
    first = run_demo(data_dir, tmp_path / "first.log")
    assert (data_dir / "demo-account.json").stat().st_mode & 0o077 == 0
    second = run_demo(data_dir, tmp_path / "second.log")
    assert second["author"] == first["author"]
    assert second["token"] != first["token"] and second["video_id"] != first["video_id"]


def test_demo_seeds_the_feed_with_a_handful_of_creators(tmp_path: Path) -> None:
    """Issue 18: after its own clip, `serve --demo` publishes one clip from each of four more
    creators (each another colour and tone) and says where the web app is; the for-you feed
    then has five videos to swipe, one per creator."""
    env = embedded_env(tmp_path / "data", REELFORGE_FEED_CACHE_SECONDS="1")
    api = ApiProcess(env, free_port(), tmp_path / "demo.log", "--demo", "--demo-seconds", "2")
    with api:
        api.start()
        deadline = time.monotonic() + 240
        while "demo: the web app" not in api.log() and "demo: failed" not in api.log():
            assert api.running(), api.log_tail()
            assert time.monotonic() < deadline, api.log_tail()
            time.sleep(0.5)
        assert "demo: failed" not in api.log(), api.log_tail()
        assert f"open {api.url}/" in api.log()
        time.sleep(1.5)  # the for-you snapshot is rebuilt each second here
        feed = httpx.get(f"{api.url}/v1/feed?limit=10", timeout=10).json()
        handles = sorted(v["author"]["handle"] for v in feed["videos"])
        assert handles == sorted(["demo", *FEED_CREATORS]), feed
        assert all(v["status"] == "published" and v["hls_url"] for v in feed["videos"])
        assert len({v["poster_url"] for v in feed["videos"]}) == 5
