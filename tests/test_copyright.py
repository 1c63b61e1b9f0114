"""Copyright on the upload path (issue 5, "Copyright: audio fingerprints"): the fingerprint
analyzer fed by the real engine's audio taps, `evaluate` applying the owner's policy and
recording the claim, and `mute_outputs` leaving a valid HLS/DASH presentation without audio."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from api.core.db import create_schema, now_ms, sync_engine
from api.core.settings import Settings
from api.core.tables import audio_refs, copyright_claims, users, videos
from api.safety.copyright import CopyrightOutcome, evaluate, mute_outputs, record_claim
from bench.fingerprint_eval import MUSIC_DIR
from classifiers import catalog
from classifiers.fingerprint import (
    FORMAT_VERSION,
    QUERY_PARAMS,
    FingerprintAnalyzer,
    fingerprint,
    load_audio,
)
from engine.pipeline import TranscodeOptions, transcode
from tests.support.ffprobe import run_ffprobe

TRACK = "freezingpoint.ogg"
AUDIO_START_S = 30.0
OWNER = "Grady O'Connell"


@pytest.fixture(scope="module")
def transcoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A 6 s upload whose soundtrack is a catalog track from 30 s on, through the engine with
    the fingerprint analyzer tapping its audio; (outputs, the analyzer's result)."""
    folder = tmp_path_factory.mktemp("upload")
    clip = folder / "upload.mp4"
    video = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"]
    audio = ["-ss", str(AUDIO_START_S), "-i", str(MUSIC_DIR / TRACK)]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    output = ["-t", "6", "-map", "0:v", "-map", "1:a", *codecs, "-b:a", "128k", str(clip)]
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *video, *audio, *output],
        check=True,
        timeout=120,
    )
    analyzer = FingerprintAnalyzer()
    options = TranscodeOptions(preset="ultrafast", thumbnails=False)
    report = transcode(clip, folder / "out", options, taps=[analyzer])
    assert report["ladder"]["audio"] is not None
    return folder / "out", analyzer.result()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path).resolved()


@pytest.fixture
def db(settings: Settings) -> Iterator[Engine]:
    """A fresh embedded database whose catalog holds the track (policy set per test)."""
    engine = sync_engine(settings)
    create_schema(engine)
    reference = fingerprint(load_audio(MUSIC_DIR / TRACK))
    with engine.begin() as conn:
        catalog.add_reference(conn, TRACK, OWNER, reference, "block")
    try:
        yield engine
    finally:
        engine.dispose()


def add_video(conn: Any) -> str:
    now = now_ms()
    conn.execute(
        insert(users).values(
            id="u_creator", handle="creator", display_name="c", password_hash="x", created_at=now
        )
    )
    conn.execute(
        insert(videos).values(
            id="v_upload",
            owner_id="u_creator",
            status="processing",
            created_at=now,
            updated_at=now,
            upload_kind="direct",
            upload_size=1,
            upload_content_type="video/mp4",
            upload_expires_at=now,
        )
    )
    return "v_upload"


def test_the_analyzer_fingerprints_the_engine_audio(
    transcoded: tuple[Path, dict[str, Any]],
) -> None:
    _, result = transcoded
    assert result["version"] == FORMAT_VERSION and result["sample_rate"] == 8000
    assert result["duration_s"] == pytest.approx(6.0, abs=0.05)
    assert result["count"] > 6 * 100  # landmark hashes a second of music


@pytest.mark.parametrize("policy", ["block", "mute", "allow"])
def test_evaluate_applies_the_owner_policy(
    transcoded: tuple[Path, dict[str, Any]], db: Engine, settings: Settings, policy: str
) -> None:
    _, result = transcoded
    with db.begin() as conn:
        conn.execute(update(audio_refs).values(policy=policy))
        video_id = add_video(conn)
        outcome = evaluate(conn, result, settings, video_id=video_id)
    assert outcome.action == policy
    claim = outcome.claim
    assert claim is not None
    assert (claim["name"], claim["owner"], claim["policy"]) == (TRACK, OWNER, policy)
    assert abs(claim["offset_s"] - AUDIO_START_S) <= 0.1
    assert claim["score"] >= settings.fingerprint_min_score
    with db.connect() as conn:
        row = conn.execute(select(copyright_claims)).one()
    assert (row.video_id, row.ref_id, row.owner, row.action) == (
        video_id,
        claim["ref_id"],
        OWNER,
        policy,
    )
    assert row.offset_s == pytest.approx(claim["offset_s"])


def test_a_claim_recorded_twice_is_one_row(
    transcoded: tuple[Path, dict[str, Any]], db: Engine, settings: Settings
) -> None:
    _, result = transcoded
    with db.begin() as conn:
        video_id = add_video(conn)
        outcome = evaluate(conn, result, settings)
        record_claim(conn, video_id, outcome.claim)
        record_claim(conn, video_id, outcome.claim)
        record_claim(conn, video_id, None)
        rows = conn.execute(select(copyright_claims.c.video_id)).all()
    assert [tuple(r) for r in rows] == [(video_id,)]


def test_audio_outside_the_catalog_is_allowed_without_a_claim(
    db: Engine, settings: Settings, media: Path
) -> None:
    foreign = fingerprint(load_audio(media / "cockatoo.mp4"), QUERY_PARAMS).to_json()
    silent = FingerprintAnalyzer().result()  # a video without audio: no frame tapped
    assert silent["count"] == 0
    with db.begin() as conn:
        for result in (foreign, silent, None):
            assert evaluate(conn, result, settings) == CopyrightOutcome("allow", None)
        assert conn.execute(select(copyright_claims)).all() == []


def test_the_match_threshold_comes_from_settings(
    transcoded: tuple[Path, dict[str, Any]], db: Engine, settings: Settings
) -> None:
    _, result = transcoded
    strict = Settings(data_dir=settings.data_dir, fingerprint_min_score=10**6).resolved()
    with db.connect() as conn:
        assert evaluate(conn, result, strict).claim is None
        assert evaluate(conn, result, settings).claim is not None


def streams(path: Path) -> list[str]:
    found = run_ffprobe(path, "-show_streams")["streams"]
    return sorted(stream["codec_type"] for stream in found)


def test_mute_outputs_leaves_hls_and_dash_without_audio(
    transcoded: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    shutil.copytree(transcoded[0], outdir)
    assert "audio" in streams(outdir / "master.m3u8")
    mute_outputs(outdir)
    assert not (outdir / "audio").exists()
    master = (outdir / "master.m3u8").read_text()
    assert "TYPE=AUDIO" not in master and "mp4a" not in master
    assert "#EXT-X-STREAM-INF" in master
    mpd = (outdir / "manifest.mpd").read_text()
    assert 'contentType="audio"' not in mpd and "mp4a" not in mpd
    assert 'contentType="video"' in mpd
    for entry in ("master.m3u8", "manifest.mpd"):
        kinds = streams(outdir / entry)
        assert kinds and set(kinds) == {"video"}, (entry, kinds)
        decoded = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(outdir / entry), "-f", "null", "-"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr
    mute_outputs(outdir)  # again: nothing left to remove
    assert (outdir / "master.m3u8").read_text() == master


def test_mute_outputs_refuses_a_folder_that_is_no_transcode(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    with pytest.raises(ValueError, match="not a transcode"):
        mute_outputs(tmp_path)
    assert (tmp_path / "audio").is_dir()
