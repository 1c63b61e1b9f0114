"""The benchmark's parts work: the source builder and the ffmpeg baseline. Nothing is timed."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench import baseline
from bench.make_source import MEDIA_DIR, build_source


def test_prerequisites_are_there() -> None:
    """Missing tools or clips fail the suite; they never skip it."""
    assert shutil.which("ffmpeg") and shutil.which("ffprobe"), "apt-get install -y ffmpeg"
    assert MEDIA_DIR.is_dir(), f"no real clips in {MEDIA_DIR}"


PORTRAIT_RUNGS = [(1080, 1920), (720, 1280), (540, 960), (360, 640)]
MPD_NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011"}


def ffprobe_streams(path: Path, *extra: str) -> list[dict[str, object]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *extra, "-show_streams", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    streams: list[dict[str, object]] = json.loads(out.stdout)["streams"]
    return streams


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_source(3.0, tmp_path_factory.mktemp("bench-work"))


@pytest.fixture(scope="module")
def plan(source: Path) -> baseline.LadderPlan:
    return baseline.plan_ladder(source)


def test_make_source_builds_a_3s_portrait_h264_aac_source(source: Path) -> None:
    video, audio = ffprobe_streams(source, "-count_packets")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 1080, 1920)
    assert video["r_frame_rate"] == "30/1"
    assert video["nb_read_packets"] == "90"
    assert (audio["codec_name"], audio["sample_rate"], audio["channels"]) == ("aac", "48000", 2)


def test_make_source_is_cached(source: Path) -> None:
    built = source.stat().st_mtime_ns
    assert build_source(3.0, source.parent) == source
    assert source.stat().st_mtime_ns == built


def test_baseline_carries_the_engine_encoder_options(plan: baseline.LadderPlan) -> None:
    assert [(r.width, r.height) for r in plan.rungs] == PORTRAIT_RUNGS
    command = baseline.ladder_command(plan, Path("out"))
    floor = baseline.floor_command(plan, Path("raw"))
    for index, settings in enumerate(plan.settings):
        args = plan.profile.ffmpeg_args(settings, index)
        for built in (command, floor):
            start = built.index(args[0])
            assert built[start : start + len(args)] == args


def test_ffmpeg_baseline_writes_the_rung_sizes(plan: baseline.LadderPlan, tmp_path: Path) -> None:
    outdir = tmp_path / "ffmpeg"
    outdir.mkdir()
    done = subprocess.run(baseline.ladder_command(plan, outdir), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    mpd = ET.parse(outdir / "manifest.mpd").getroot()
    sizes = [
        (int(rep.attrib["width"]), int(rep.attrib["height"]))
        for rep in mpd.iterfind(".//mpd:Representation", MPD_NS)
        if rep.attrib.get("mimeType") == "video/mp4"
    ]
    assert sizes == PORTRAIT_RUNGS
    assert "RESOLUTION=1080x1920" in (outdir / "master.m3u8").read_text()
    # The encoded streams themselves, not only what the manifest says: init + first segment.
    for index, size in enumerate(PORTRAIT_RUNGS):
        track = tmp_path / f"track{index}.mp4"
        init = (outdir / f"init-stream{index}.m4s").read_bytes()
        track.write_bytes(init + (outdir / f"chunk-stream{index}-00001.m4s").read_bytes())
        (stream,) = ffprobe_streams(track)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", *size)
        assert stream["pix_fmt"] == "yuv420p"
    (poster,) = ffprobe_streams(outdir / "poster.jpg")
    assert (poster["width"], poster["height"]) == (1080, 1920)
    (sprite,) = ffprobe_streams(outdir / "storyboard.jpg")
    columns, rows = plan.storyboard_grid
    assert plan.thumbnail_count == 3
    assert (sprite["width"], sprite["height"]) == (90 * columns, 160 * rows) == (270, 160)
