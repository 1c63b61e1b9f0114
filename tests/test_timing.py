"""Issue 12, timing from timestamps: durations from the pts and each frame's real duration,
VFR seen from one held frame, the output at the moving frames' rate with held frames repeated,
audio in sync, audio past the video trimmed and not decoded, and the duration cap on the
longest stream with a truthful length.

The variable-rate shapes (tests/support/timing_clips.py) carry each frame's index in the
picture and a beep at a known frame, so the outputs are checked picture by picture.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from engine.errors import TooLongError
from engine.pipeline import TranscodeOptions, probe_and_check, transcode
from engine.policy import InputPolicy
from engine.source import probe
from engine.timing import frame_timing
from tests.conftest import run_reelforge
from tests.support.clips import ffmpeg
from tests.support.ffprobe import joined_rendition
from tests.support.timing_clips import (
    SHAPES,
    Played,
    Shape,
    av_offset,
    build,
    long_audio,
    misplaced_frames,
    play,
)
from tests.support.verify import verify_output

SHAPE = {shape.name: shape for shape in SHAPES}
# name: (variable rate?, output rate, output frames showing distinct source frames)
EXPECTED = {
    "held_first": (True, Fraction(30), 91),  # the old probe: 20.03 s at 5 fps, 17 kept
    "held_middle": (True, Fraction(30), 120),
    "slowmo_120": (False, Fraction(60), 120),  # every other frame
    "slowmo_240": (False, Fraction(60), 120),  # every fourth frame
    "screen_recorder": (True, Fraction(60), 101),  # the old probe: 15 fps
}
SYNC = 0.040  # s: A/V offset the issue allows


# ------------------------------------------------------------------------ pure timing

MS = Fraction(1, 1000)
TICK_90K = Fraction(1, 90_000)
TICK_600 = Fraction(1, 600)


def _run(start: int, count: int, step: int) -> list[int]:
    return [start + k * step for k in range(count)]


@pytest.mark.parametrize(
    ("stamps", "time_base", "last", "end", "nominal", "variable", "held"),
    [
        # a first frame held 10 s, then 90 frames at 30 fps
        ([0, *_run(900_000, 90, 3000)], TICK_90K, 3000, 13.0, Fraction(30), True, 1),
        # one frame held 3 s in the middle
        ([*_run(0, 60, 3000), *_run(450_000, 60, 3000)], TICK_90K, 3000, 7.0, 30, True, 1),
        # 29.97 fps on a millisecond clock: 33/34 ms jitter is not variable
        ([round(k * 1001 / 30) for k in range(90)], MS, 33, 90 * 1.001 / 30, Fraction(30000, 1001),
         False, 0),
        # 240 fps on a 1/600 clock: 2 and 3 ticks in turn, a constant rate
        ([round(k * Fraction(600, 240)) for k in range(480)], TICK_600, 2, 2.0, 240, False, 0),
        # 30 fps for 1 s, then 60 fps for 1 s: the peak rate, not the average (45 fps); at
        # 60 fps each of the first 30 frames is a held one
        ([*_run(0, 30, 3000), *_run(90_000, 60, 1500)], TICK_90K, 1500, 2.0, 60, True, 30),
        # no duration on the last packet (MPEG-TS): one typical interval
        (_run(0, 30, 3000), TICK_90K, None, 1.0, 30, False, 0),
        # a last frame held 1 s
        (_run(0, 30, 3000), TICK_90K, 90_000, 1.9667, 30, True, 1),
    ],
)  # fmt: skip
def test_frame_timing(
    stamps: list[int],
    time_base: Fraction,
    last: int | None,
    end: float,
    nominal: Fraction,
    variable: bool,
    held: int,
) -> None:
    # Decode order (B-frames): the pts come out of order; only their order matters.
    shuffled = stamps[::2] + stamps[1::2]
    timing = frame_timing(shuffled, time_base, last)
    assert timing is not None
    assert timing.end == pytest.approx(end, abs=1e-3)
    assert timing.nominal_rate == nominal
    assert timing.variable is variable
    assert timing.held_frames == held
    assert timing.count == len(stamps)


def test_frame_timing_of_one_frame_and_none() -> None:
    one = frame_timing([9000], TICK_90K, 3600)
    assert one is not None and one.count == 1 and one.duration == pytest.approx(0.04)
    assert not one.variable and one.held_frames == 0
    assert frame_timing([], TICK_90K, None) is None


# ------------------------------------------------------------------- the shapes, probed


@pytest.fixture(scope="session")
def shape_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("timing-shapes")


@pytest.mark.parametrize("name", sorted(SHAPE))
def test_probe_reads_the_shape(name: str, shape_dir: Path) -> None:
    shape = SHAPE[name]
    variable, rate, _ = EXPECTED[name]
    info = probe(build(shape, shape_dir))
    assert info.duration == pytest.approx(shape.end, abs=1e-3)
    assert info.frame_count == shape.frame_count
    assert info.variable_frame_rate is variable
    assert info.output_frame_rate == rate
    assert info.media_duration == pytest.approx(shape.end, abs=0.03)  # audio as long


def test_one_held_frame_is_seen(shape_dir: Path) -> None:
    info = probe(build(SHAPE["held_first"], shape_dir))
    assert info.held_frames == 1 and info.longest_frame == pytest.approx(10.0)
    assert info.frame_rate == 7  # the average, 91 frames in 13 s: what the output must not use
    assert info.nominal_frame_rate == 30


# --------------------------------------------------------------- the shapes, transcoded


@pytest.fixture(scope="module")
def outputs(
    shape_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Shape], tuple[dict[str, Any], Path]]:
    root = tmp_path_factory.mktemp("timing-outputs")
    cache: dict[str, tuple[dict[str, Any], Path]] = {}

    def run(shape: Shape) -> tuple[dict[str, Any], Path]:
        if shape.name not in cache:
            outdir = root / shape.name
            cache[shape.name] = (transcode(build(shape, shape_dir), outdir), outdir)
        return cache[shape.name]

    return run


def played(report: dict[str, Any], outdir: Path) -> Played:
    top = report["ladder"]["video"][0]["name"]
    with joined_rendition(outdir / top) as video, joined_rendition(outdir / "audio") as audio:
        return play(video, audio)


@pytest.mark.parametrize("name", sorted(SHAPE))
def test_transcoded_shape_keeps_every_picture_in_time(
    name: str, outputs: Callable[[Shape], tuple[dict[str, Any], Path]]
) -> None:
    shape = SHAPE[name]
    _, rate, distinct = EXPECTED[name]
    report, outdir = outputs(shape)
    assert Fraction(report["output"]["frame_rate"]) == rate
    out = played(report, outdir)
    assert len(out.codes) == round(shape.end * rate) == report["decode"]["output_frames"]
    # every output frame shows the source frame due at its time: held frames are repeated,
    # moving frames kept (all of them up to the output rate)
    assert misplaced_frames(shape, out, float(rate)) == []
    assert len(set(out.codes)) == distinct
    assert out.video_end == pytest.approx(shape.end, abs=1e-6)
    assert out.audio_end is not None and abs(out.audio_end - out.video_end) < SYNC
    offset = av_offset(shape, out)
    assert offset is not None and abs(offset) < SYNC, offset
    timing = report["timing"]
    assert timing["source_duration"] == pytest.approx(shape.end, abs=1e-3)
    assert timing["output_duration"] == pytest.approx(shape.end, abs=1e-6)


@pytest.mark.parametrize("name", ["held_first", "screen_recorder"])
def test_transcoded_shape_passes_the_output_checks(
    name: str, shape_dir: Path, outputs: Callable[[Shape], tuple[dict[str, Any], Path]]
) -> None:
    _, outdir = outputs(SHAPE[name])
    assert verify_output(outdir, build(SHAPE[name], shape_dir)) == []


# ------------------------------------------------------------------ long audio, caps


def test_audio_past_the_video_is_trimmed_and_not_decoded(shape_dir: Path, tmp_path: Path) -> None:
    shape = long_audio()  # 2 s of video over 20 s of audio
    source = build(shape, shape_dir)
    info = probe(source)
    assert (info.duration, info.media_duration) == (pytest.approx(2.0), pytest.approx(20.0))
    report = transcode(source, tmp_path / "out")
    assert report["timing"]["audio_trimmed"] == pytest.approx(18.0, abs=0.01)
    assert report["timing"]["longest_stream_duration"] == pytest.approx(20.0, abs=0.01)
    decode = report["decode"]
    # 2 s of 1024-sample AAC frames at 48 kHz is 94; the whole track would be 938
    assert decode["decoded_audio_frames"] <= 96
    assert decode["audio_packets_skipped"] >= 1
    out = played(report, tmp_path / "out")
    assert out.audio_end is not None and abs(out.audio_end - 2.0) < SYNC
    offset = av_offset(shape, out)
    assert offset is not None and abs(offset) < SYNC
    assert verify_output(tmp_path / "out", source) == []


def test_the_cap_applies_to_the_longest_stream(shape_dir: Path) -> None:
    source = build(long_audio(), shape_dir)
    with pytest.raises(TooLongError, match=r"video too long: 20\.0 s, the limit is 10 s"):
        probe_and_check(source, InputPolicy(max_duration=10))
    probe_and_check(source, InputPolicy(max_duration=20))


@pytest.fixture(scope="module")
def twelve_seconds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """12 s clips: an MP4 (its header declares the length) and a live Matroska (none)."""
    folder = tmp_path_factory.mktemp("twelve")
    src = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=5:duration=12"]
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    clips = {"declared": folder / "declared.mp4", "live": folder / "live.mkv"}
    ffmpeg(*src, *x264, str(clips["declared"]))
    ffmpeg(*src, *x264, "-f", "matroska", "-live", "1", str(clips["live"]))
    return clips


@pytest.mark.parametrize(
    ("name", "words"),
    [
        # the scan stops at 5 + 5 s; the header says how long the file really is
        ("declared", "video too long: 12.0 s, the limit is 5 s"),
        # nothing declares it: only what was read is known
        ("live", "video too long: over 10 s, the limit is 5 s"),
    ],
)
def test_too_long_names_the_real_length_or_says_over(
    twelve_seconds: dict[str, Path], name: str, words: str
) -> None:
    with pytest.raises(TooLongError) as caught:
        probe_and_check(twelve_seconds[name], InputPolicy(max_duration=5))
    assert str(caught.value) == words


def test_options_default_to_the_designs_ten_minutes() -> None:
    assert TranscodeOptions().policy.max_duration == 600
    assert InputPolicy().min_duration == 1


# ------------------------------------------------------------------------------ CLI


def test_cli_max_duration(shape_dir: Path, tmp_path: Path) -> None:
    source = build(SHAPE["held_middle"], shape_dir)  # 7 s
    refused = run_reelforge("transcode", str(source), str(tmp_path / "a"), "--max-duration", "5")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "reelforge: input rejected: video too long: 7.0 s, the limit is 5 s"
    ]
    assert not (tmp_path / "a").exists()
    done = run_reelforge("transcode", str(source), str(tmp_path / "b"), "--max-duration", "8")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "b" / "report.json").is_file()


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (["-f", "lavfi", "-i", "testsrc2=size=320x240", "-frames:v", "1", "-f", "image2",
          "-c:v", "png"], "still image: the file holds one picture (png), not a video"),
        (["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=0.3", "-c:v", "libx264",
          "-pix_fmt", "yuv420p"], "video too short: 0.30 s, the minimum is 1 s"),
    ],
)  # fmt: skip
def test_cli_rejects_stills_and_slivers(make: list[str], words: str, tmp_path: Path) -> None:
    source = tmp_path / "upload.mp4"  # a PNG named .mp4 is still a PNG
    ffmpeg(*make, str(source))
    proc = run_reelforge("transcode", str(source), str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"reelforge: input rejected: {words}"]
    assert not (tmp_path / "out").exists()
