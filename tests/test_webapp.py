"""The web app in a real Chromium (issue 18): a person's first minutes, checked against the API.

`tests/player/webapp.mjs` drives the page that `reelforge serve` (embedded) serves at `/`, at a
phone-sized viewport: it registers, uploads a clip through the page (tus, with the progress
bar), waits until the page plays it, opens the For You feed, swipes to the next video once it
is preloaded, unmutes, likes, follows, comments and shares. This test then asks the API what
happened. Screenshots of each step are kept under the test's tmp folder (`screenshots/`; the
path is printed), or under `$REELFORGE_TEST_ARTIFACTS/webapp/` when that is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import make_settings
from tests.support.clips import ffmpeg
from tests.support.e2e import Flow
from tests.support.moderation import make_moderator
from tests.support.player import CHROMIUM, PLAYER_DIR, ensure_player_installed, node_executable
from tests.support.services import ApiProcess, embedded_env, free_port

ROOT = Path(__file__).resolve().parents[1]
DRIVER = PLAYER_DIR / "webapp.mjs"
DRIVER_TIMEOUT_S = 150


def _clip(path: Path, seconds: int, pattern: str, frequency: int) -> Path:
    """A portrait H.264/AAC MP4 with 1 s keyframes: quick to transcode on two cores."""
    ffmpeg(
        "-f", "lavfi", "-i", f"{pattern}=size=360x640:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", str(path),
    )  # fmt: skip
    return path


def _artifacts(tmp_path: Path) -> Path:
    base = os.environ.get("REELFORGE_TEST_ARTIFACTS")
    return Path(base) / "webapp" if base else tmp_path / "screenshots"


def _drive(base_url: str, clip: Path, out: Path, handle: str, *extra: str) -> dict[str, Any]:
    command = [
        node_executable() or "node", str(DRIVER),
        "--base", base_url, "--clip", str(clip), "--out", str(out),
        "--handle", handle, "--timeout", str(DRIVER_TIMEOUT_S), "--chromium", str(CHROMIUM),
        *extra,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=PLAYER_DIR, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S + 60
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _wait(what: str, check: Any, deadline_s: float = 15.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, what
            return value
        time.sleep(0.25)


def test_a_newcomer_registers_uploads_swipes_likes_follows_comments(tmp_path: Path) -> None:
    ensure_player_installed()  # a missing browser or Node fails, it does not skip
    assert (ROOT / "web" / "node_modules" / "hls.js").is_dir(), "run `npm ci --prefix web`"
    # The for-you snapshot is rebuilt each second (30 s by default), so videos published
    # during the test are in the feed the page opens.
    # A caption with a watched word is held for review (with its media): the moderator's part.
    env = embedded_env(
        tmp_path / "data", REELFORGE_FEED_CACHE_SECONDS="1", REELFORGE_WATCHED_WORDS="spoiler"
    )
    with ApiProcess(env, free_port(), tmp_path / "api.log") as api:
        api.start()
        with Flow(api.url) as flow:
            # Creators to follow, one video each: the for-you feed shows one video per
            # creator in any five (api/feed/ranking.py), so each swipe meets another creator.
            creators, theirs = {}, {}
            # Three: the feed the page opens right after signing up plays (and so marks seen)
            # the first of them before the upload.
            for n, pattern in enumerate(("testsrc2", "smptebars", "rgbtestsrc")):
                creator = flow.register(f"creator{n}_" + os.urandom(3).hex())
                clip = _clip(tmp_path / f"creator-{n}.mp4", 4, pattern, 330 + 110 * n)
                video_id = flow.upload_tus(creator, clip)
                flow.publish(creator, video_id, caption=f"creator clip {n}")
                creators[creator.id], theirs[video_id] = creator, creator
            held_clip = _clip(tmp_path / "held.mp4", 3, "smptehdbars", 660)
            holder = creator  # the last creator also posts a video that is held
            held = flow.upload_tus(holder, held_clip)
            flow.publish(holder, held, caption="huge spoiler inside")
            for video_id, creator in theirs.items():
                assert flow.wait_status(video_id, creator, deadline_s=120)["status"] == "published"
            assert flow.wait_status(held, holder, deadline_s=120)["status"] == "in_review"
            moderator = flow.register("mod_" + os.urandom(3).hex(), password="moderator pass 1")
            make_moderator(make_settings(tmp_path / "data"), moderator.handle)
            review = (
                "--moderator", moderator.handle, "--moderator-password", "moderator pass 1",
                "--review", held,
            )  # fmt: skip

            handle = "newcomer_" + os.urandom(3).hex()
            mine = _clip(tmp_path / "mine.mp4", 3, "testsrc", 550)
            out = _artifacts(tmp_path)
            result = _drive(api.url, mine, out, handle, *review)
            print(f"screenshots: {out}")
            print(json.dumps({k: v for k, v in result.items() if k != "token"}, indent=1))
            assert result["failed"] is None, (result["failed"], result["errors"], api.log_tail())
            # Nothing failed in the page. The refusals expected: the moderator probe (this
            # account is not a moderator: the Review tab stays hidden), and the second report
            # of the same video (409: the page says it was already reported).
            expected = {
                (403, "/v1/moderation/queue"),
                (409, f"/v1/videos/{result['currentVideoId']}/report"),
            }
            unexpected = [
                e for e in result["errors"]
                if (e.get("status"), e.get("url", "").split("?")[0].removeprefix(api.url))
                not in expected
            ]  # fmt: skip
            assert unexpected == [], result["errors"]

            # The account the page registered, and the video it uploaded and published.
            me = flow.http.get(f"/v1/users/{result['userId']}").json()
            assert me["handle"] == handle and me["following_count"] == 1
            uploaded = flow.http.get(f"/v1/videos/{result['uploadedVideoId']}").json()
            assert uploaded["status"] == "published"
            assert uploaded["author"]["id"] == result["userId"]
            assert uploaded["caption"] == f"made by {handle} in Chromium"
            # The progress bar moved with the bytes and ended full.
            progress = result["progress"]
            assert len(progress) >= 2 and progress == sorted(progress) and progress[-1] == 100

            # What the page liked, followed and commented on, as the API now says.
            liked = result["currentVideoId"]
            assert liked in theirs
            creator = theirs[liked]
            assert result["currentAuthorId"] == creator.id
            video = flow.video(liked)
            assert video["like_count"] == 1 == result["likeCountShown"]
            assert video["comment_count"] == 1
            assert video["share_count"] == 1
            comments = flow.comments(liked)["comments"]
            assert [(c["author"]["id"], c["body"]) for c in comments] == [
                (result["userId"], result["comment"])
            ]
            assert flow.user(creator.id)["follower_count"] == 1 == result["profileFollowers"]
            assert result["profileFollowShown"] == "Following"
            # The page logged out (its token is revoked): log in again to read the feed.
            revoked = {"Authorization": f"Bearer {result['token']}"}
            assert flow.http.get("/v1/feed?type=following", headers=revoked).status_code == 401
            login = {"handle": handle, "password": "correct horse battery"}
            token = flow.http.post("/v1/auth/login", json=login).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
            following = flow.http.get("/v1/feed?type=following", headers=headers).json()
            assert [v["id"] for v in following["videos"]] == [liked]
            # Share copied the video's page and its MP4.
            assert result["shared"].splitlines() == [
                f"{api.url}/#/v/{liked}",
                video["mp4_url"],
            ]
            # Watch events: the first video of the feed was played (then skipped).
            first = result["firstVideoId"]
            _wait(
                "the first video's play event was recorded",
                lambda: flow.video(first)["view_count"] >= 1,
            )

            # Every kind of watch event was sent, and the API took every one.
            sent = {t for batch in result["eventBatches"] for t in batch["types"]}
            assert {"impression", "play", "watch_ms", "completed", "loop", "skip"} <= sent
            assert {"share", "not_interested"} <= sent
            for batch in result["eventBatches"]:
                assert batch["answer"]["rejected"] == [], batch
            assert sum(b["answer"]["accepted"] for b in result["eventBatches"]) == sum(
                len(b["types"]) for b in result["eventBatches"]
            )
            # Not interested: the video left the feed the page showed.
            before, after = result["feedCountAfterNotInterested"]
            assert after == before - 1

            # Preloading: the next video's first segment was in before the swipe.
            metrics = result["metrics"]
            assert metrics["engine"] == "hls.js"
            assert result["nativeEngine"] == "native"  # and it plays without MSE too
            assert metrics["firstFrameMs"] > 0
            assert metrics["swipes"] and metrics["swipes"][0]["preloadedFragments"] >= 1
            # The moderator played the held video in the queue and rejected it with a reason.
            assert result["reviewAnswer"] == "rejected"
            rejected = flow.video(held, holder)
            assert rejected["status"] == "rejected"
            assert rejected["status_reason"].endswith(result["rejectReason"])
            assert len(result["screenshots"]) >= 9
            for shot in result["screenshots"]:
                assert Path(shot).stat().st_size > 5_000, shot


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: a proxy variable must not send the test's requests elsewhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_an_upload_pauses_resumes_and_shows_why_the_file_was_refused(tmp_path: Path) -> None:
    """The upload page on a 3 MiB/s uplink: a 12 MiB file goes in 8 MiB tus chunks; paused
    after the first, the server holds exactly that chunk, and resuming sends only the rest.
    The file is no video: the page then shows the refusal and its reason, as the API has them."""
    ensure_player_installed()
    with ApiProcess(embedded_env(tmp_path / "data"), free_port(), tmp_path / "api.log") as api:
        api.start()
        with Flow(api.url) as flow:
            owner = flow.register("uploader_" + os.urandom(3).hex())
            user = flow.user(owner.id)
            junk = tmp_path / "holiday.mp4"
            junk.write_bytes(os.urandom(12 * 1024 * 1024))
            command = [
                node_executable() or "node", str(PLAYER_DIR / "webapp_upload.mjs"),
                "--base", api.url,
                f"--token={owner.token}",  # one '=' form: a token may start with "-"
                "--user-json", json.dumps(user), "--file", str(junk),
                "--out", str(_artifacts(tmp_path)), "--chromium", str(CHROMIUM),
            ]  # fmt: skip
            done = subprocess.run(
                command, cwd=PLAYER_DIR, capture_output=True, text=True, timeout=180
            )
            assert done.returncode == 0, done.stderr[-4000:]
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(result, indent=1))
            assert result["failed"] is None and result["errors"] == [], result
            # Paused after the first chunk: the server has it whole, and nothing more.
            assert result["server"]["status"] == 200
            assert result["server"]["offset"] == 8 * 1024 * 1024
            assert result["server"]["length"] == junk.stat().st_size
            assert 8 / 12 * 100 <= result["pausedAt"] < 100
            # Resumed from the server's offset, not from the start.
            after = result["progress"][result["progress"].index(result["pausedAt"]) + 1 :]
            assert after and min(after) >= 8 / 12 * 100 - 0.01, result["progress"]
            # The bar moved with the bytes (a 3 MiB/s uplink: many steps) and ended full.
            assert len(result["progress"]) >= 5 and result["progress"][-1] == 100
            # The page says what the API says: refused, and why.
            video = flow.video(result["videoId"], owner)
            assert video["status"] == result["status"] in ("rejected", "failed")
            assert video["status_reason"] and result["reason"] == video["status_reason"]
