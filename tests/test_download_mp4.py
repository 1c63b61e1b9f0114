"""download.mp4 (issue 12, "An MP4 for sharing"): every transcode also writes a progressive MP4
of the 720p rung (or the top rung below it) plus the audio, with the `moov` first, made by
copying the very samples of the CMAF tracks; a copyright mute leaves it without audio.

Checked with ffprobe/ffmpeg (Debian's 5.1) and PyAV on a generated clip and real clips.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from api.jobs.report import without_audio
from api.safety.copyright import mute_outputs
from packager.isobmff import iter_boxes
from tests.conftest import JobResult
from tests.support.ffprobe import joined_rendition, probe_packets, probe_streams, run_ffprobe
from tests.support.player import PLAYER_DIR, play_url
from tests.support.static_server import StaticServer

# (source, the rung the download is made of, has audio)
SOURCES = [
    ("generated:portrait", "v720", True),  # 1080x1920 ladder: the 720p rung
    ("rotate-buck-bunny.mp4", "v720", True),  # -90° display matrix: upright 720x1280
    ("edts.mp4", "v360", True),  # 854x480, edit list: the top rung is below 720
    ("sar_2x1.mp4", "v360", False),  # no audio: video only
]


@pytest.fixture(scope="module")
def job(
    media: Path,
    generated: Callable[[str], Path],
    transcoded: Callable[[Path], JobResult],
) -> Callable[[str], JobResult]:
    def run(source: str) -> JobResult:
        kind, _, name = source.partition(":")
        path = generated(name) if kind == "generated" else media / source
        result = transcoded(path)
        assert result.returncode == 0, result.stderr
        return result

    return run


def packet_hashes(path: Path, select: str) -> list[tuple[str, bool]]:
    """(SHA-256 of the payload, keyframe) of every packet of a stream, in decode order."""
    data = run_ffprobe(
        path,
        "-select_streams", select,
        "-show_data_hash", "sha256",
        "-show_entries", "packet=data_hash,flags",
    )  # fmt: skip
    hashes = [(p["data_hash"], "K" in p["flags"]) for p in data["packets"]]
    assert hashes, f"{path}: no packets in stream {select}"
    return hashes


def top_level_boxes(path: Path) -> list[str]:
    return [box.type for box in iter_boxes(path.read_bytes())]


def decode_errors(path: Path) -> str:
    proc = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stderr if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr}"


@pytest.mark.parametrize(("source", "rung", "has_audio"), SOURCES)
def test_download_is_a_faststart_remux_of_the_rung(
    job: Callable[[str], JobResult], source: str, rung: str, has_audio: bool
) -> None:
    result = job(source)
    report, outdir = result.report, result.outdir
    mp4 = outdir / "download.mp4"
    entry = report["output"]["download"]
    assert (entry["file"], entry["rung"]) == ("download.mp4", rung)
    assert entry["audio"] == ("audio" if has_audio else None)
    assert entry["bytes"] == mp4.stat().st_size > 0
    assert "seconds" not in entry and report["stages"]["download"] >= 0

    streams = probe_streams(mp4)
    assert [(s.codec_type, s.codec_name) for s in streams] == [("video", "h264")] + (
        [("audio", "aac")] if has_audio else []
    )
    ladder = {r["name"]: r for r in report["ladder"]["video"]}
    assert (streams[0].width, streams[0].height) == (ladder[rung]["width"], ladder[rung]["height"])

    boxes = top_level_boxes(mp4)
    assert "moof" not in boxes, boxes  # a plain MP4, not fragmented
    assert boxes.index("moov") < boxes.index("mdat"), boxes  # faststart

    # Same samples, same order, same sync flags as the rung's (and audio's) CMAF files.
    tracks = [rung, *(["audio"] if has_audio else [])]
    for index, track in enumerate(tracks):
        with joined_rendition(outdir / track) as joined:
            assert packet_hashes(mp4, str(index)) == packet_hashes(joined, "0"), track
        duration = streams[index].duration
        assert duration == pytest.approx(report["renditions"][track]["duration"], abs=1e-6)
    assert entry["duration"] == pytest.approx(report["renditions"][rung]["duration"], abs=1e-6)
    assert decode_errors(mp4) == ""


@pytest.mark.parametrize(("source", "rung", "has_audio"), SOURCES)
def test_first_frame_and_first_sample_present_at_zero(
    job: Callable[[str], JobResult], source: str, rung: str, has_audio: bool
) -> None:
    result = job(source)
    mp4 = result.outdir / "download.mp4"
    rate = Fraction(result.report["output"]["frame_rate"])
    video = probe_packets(mp4, "v:0")
    # Every frame at its place on the output's constant frame rate grid, the first at 0.
    shown = sorted(p.pts for p in video if not p.discard and p.pts is not None)
    assert shown == pytest.approx([float(i / rate) for i in range(len(shown))], abs=1e-6)
    starts = {s.codec_type: s.start_time for s in probe_streams(mp4)}
    assert starts == {"video": 0.0, **({"audio": 0.0} if has_audio else {})}
    if has_audio:
        audio = probe_packets(mp4, "a:0")
        assert min(p.pts for p in audio if p.pts is not None) == 0.0
    # As a player decodes it (PyAV): first picture and first sound together.
    with av.open(str(mp4)) as container:
        first_video = next(container.decode(video=0)).time
    assert first_video == 0.0
    if has_audio:
        with av.open(str(mp4)) as container:
            first_audio = next(container.decode(audio=0)).time
        assert first_audio is not None and abs(first_audio - first_video) < 1 / rate


@pytest.mark.browser
def test_chromium_plays_the_download_progressively(job: Callable[[str], JobResult]) -> None:
    """A real browser plays download.mp4 as a plain `<video src>`: picture and sound."""
    outdir = job("generated:portrait").outdir
    with StaticServer(outdir, {"/_player/": PLAYER_DIR}) as server:
        played = play_url(server.url(), "native", timeout=60, until=2.0, src="download.mp4")
    assert not played.failures(min_time=2.0), played.summary()


def test_mute_leaves_a_download_without_audio(
    job: Callable[[str], JobResult], tmp_path: Path
) -> None:
    result = job("generated:portrait")
    outdir = tmp_path / "out"
    shutil.copytree(result.outdir, outdir)
    with joined_rendition(outdir / "v720") as joined:
        rung = packet_hashes(joined, "0")
    mute_outputs(outdir)
    mp4 = outdir / "download.mp4"
    assert [s.codec_type for s in probe_streams(mp4)] == ["video"]
    assert packet_hashes(mp4, "0") == rung
    boxes = top_level_boxes(mp4)
    assert boxes.index("moov") < boxes.index("mdat")
    assert probe_streams(mp4)[0].start_time == 0.0
    assert decode_errors(mp4) == ""
    assert not any(p.name.startswith(".") for p in outdir.iterdir())  # no temporary left
    muted = without_audio(result.report, outdir)
    assert muted["output"]["download"]["audio"] is None
    assert muted["output"]["download"]["bytes"] == mp4.stat().st_size
    assert mp4.stat().st_size < result.report["output"]["download"]["bytes"]
    assert result.report["output"]["download"]["audio"] == "audio"  # the original is kept


def test_an_upload_without_video_gets_no_download(
    media: Path, transcoded: Callable[[Path], JobResult]
) -> None:
    result = transcoded(media / "multiple-aac-tracks.mp4")
    assert result.returncode == 2, result.stderr
    assert "no video stream" in result.stderr
    assert not result.outdir.exists()


def test_the_download_can_be_turned_off(generated: Callable[[str], Path], tmp_path: Path) -> None:
    from engine.pipeline import TranscodeOptions, transcode

    report: dict[str, Any] = transcode(
        generated("no_audio"), tmp_path / "out", TranscodeOptions(download=False, thumbnails=False)
    )
    assert "download" not in report["output"] and "download" not in report["stages"]
    assert not (tmp_path / "out" / "download.mp4").exists()
