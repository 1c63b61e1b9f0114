"""The `reelforge` command line and the engine's job entry points."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli.media import ProgressBar
from engine.encoders import ENCODERS, select_encoder, thread_plan, usable_cpus
from engine.errors import EncoderUnavailableError, EngineError, ResourceLimitError
from engine.jobs import transcode_limited
from engine.pipeline import TranscodeOptions, transcode
from engine.policy import InputPolicy
from ladders.model import Rung
from tests.conftest import run_reelforge


def test_probe_json(media: Path) -> None:
    proc = run_reelforge("probe", str(media / "sar_2x1.mp4"), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (data["display_width"], data["display_height"]) == (1280, 360)
    assert data["sample_aspect_ratio"] == "2/1"
    assert data["audio"] is None


def test_probe_text(media: Path) -> None:
    proc = run_reelforge("probe", str(media / "cockatoo.mp4"))
    assert proc.returncode == 0, proc.stderr
    assert "yuv444p" in proc.stdout


def test_missing_input_is_rejected(tmp_path: Path) -> None:
    proc = run_reelforge("transcode", str(tmp_path / "nope.mp4"), str(tmp_path / "out"))
    assert proc.returncode == 2
    assert "no such file" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_our_failure_exits_1(generated: Callable[[str], Path], tmp_path: Path) -> None:
    outdir = tmp_path / "busy"
    outdir.mkdir()
    (outdir / "keep.txt").write_text("someone else's file")
    proc = run_reelforge("transcode", str(generated("portrait")), str(outdir))
    assert proc.returncode == 1, proc.stderr
    assert "not empty" in proc.stderr
    assert (outdir / "keep.txt").read_text() == "someone else's file"


def test_wall_time_budget_rejects_and_leaves_nothing(
    generated: Callable[[str], Path], tmp_path: Path
) -> None:
    outdir = tmp_path / "slow"
    options = TranscodeOptions(policy=InputPolicy(max_wall_seconds=0.5))
    with pytest.raises(ResourceLimitError, match="longer than"):
        transcode_limited(generated("portrait"), outdir, options)
    assert not outdir.exists()
    assert not list(tmp_path.glob(".slow.partial-*"))


def test_memory_budget_rejects(generated: Callable[[str], Path], tmp_path: Path) -> None:
    options = TranscodeOptions(policy=InputPolicy(max_memory_bytes=200 * 1024**2))
    with pytest.raises(ResourceLimitError, match="memory"):
        transcode_limited(generated("portrait"), tmp_path / "small", options)
    assert not (tmp_path / "small").exists()


class CountingTap:
    """A consumer of the single decode, as classifiers will be."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sizes: set[tuple[int, int]] = set()
        self.samples = 0
        self.audio_formats: set[tuple[int, str, str]] = set()

    def on_video(self, frame: Any, time: float) -> None:
        self.times.append(time)
        self.sizes.add((frame.width, frame.height))

    def on_audio(self, frame: Any, time: float) -> None:
        self.samples += frame.samples
        self.audio_formats.add((frame.sample_rate, frame.layout.name, frame.format.name))


def test_taps_see_every_output_frame(generated: Callable[[str], Path], tmp_path: Path) -> None:
    tap = CountingTap()
    report = transcode(generated("square"), tmp_path / "out", taps=[tap])
    assert len(tap.times) == report["decode"]["output_frames"]
    assert tap.times == sorted(tap.times) and tap.times[0] == 0
    assert tap.sizes == {(720, 720)}  # upright frames of the largest rung
    # the audio as encoded: 48 kHz stereo, as long as the video less the AAC priming
    assert tap.audio_formats == {(48000, "stereo", "fltp")}
    video_seconds = len(tap.times) / 30
    assert abs(tap.samples / 48000 - (video_seconds - 1024 / 48000)) < 0.01


def test_encoder_registry_falls_back_to_x264() -> None:
    if ENCODERS["h264_nvenc"].available():
        assert select_encoder("auto").name == "h264_nvenc"
    else:
        assert select_encoder("auto").name == "libx264"
        with pytest.raises(EncoderUnavailableError, match="h264_nvenc"):
            select_encoder("h264_nvenc")
    with pytest.raises(EncoderUnavailableError, match="unknown encoder"):
        select_encoder("vp8")


def test_unknown_encoder_is_our_failure(generated: Callable[[str], Path], tmp_path: Path) -> None:
    with pytest.raises(EngineError):
        transcode(generated("square"), tmp_path / "out", TranscodeOptions(encoder="nope"))


def test_progress_bar_draws_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = ProgressBar("transcode", stream=screen)
    bar(0.5)
    bar(1.0)
    bar.done()
    assert "50%" in screen.getvalue() and "100%" in screen.getvalue()
    quiet = io.StringIO()
    ProgressBar("transcode", stream=quiet)(0.5)
    assert quiet.getvalue() == ""


def test_an_encoder_failure_stops_the_job_cleanly(
    generated: Callable[[str], Path], tmp_path: Path
) -> None:
    outdir = tmp_path / "broken"
    with pytest.raises(EngineError, match="encoder"):
        transcode(generated("square"), outdir, TranscodeOptions(preset="no-such-preset"))
    assert not outdir.exists()
    assert not list(tmp_path.glob(".broken.partial-*"))


def _rungs(*sizes: tuple[int, int]) -> list[Rung]:
    return [Rung(f"v{h}", w, h, 23, 1_000_000, 2_000_000) for w, h in sizes]


def test_thread_plan_shares_the_cpus_by_pixels() -> None:
    ladder = _rungs((1080, 1920), (720, 1280), (540, 960), (360, 640))
    assert thread_plan(ladder, 2) == [2, 1, 1, 1]
    assert thread_plan(ladder, 16) == [9, 4, 2, 1]
    assert thread_plan(ladder[3:], 2) == [3]  # one rung: the whole machine
    assert thread_plan(_rungs((144, 256)), 1) == [2]
    assert all(n >= 1 for n in thread_plan(ladder, 1))


def x264_threads(track: Path) -> int:
    """The frame threads x264 ran with, from the options it writes into its SEI."""
    data = b"".join(p.read_bytes() for p in sorted(track.glob("*.m4s"))[:1])
    marker = data.index(b" threads=") + len(b" threads=")
    return int(data[marker : data.index(b" ", marker)])


def test_each_rung_encodes_with_its_planned_threads(
    generated: Callable[[str], Path], tmp_path: Path
) -> None:
    report = transcode(generated("portrait"), tmp_path / "out", TranscodeOptions(encoder="libx264"))
    ladder = report["ladder"]["video"]
    rungs = _rungs(*((r["width"], r["height"]) for r in ladder))
    planned = thread_plan(rungs, usable_cpus())
    assert len(ladder) == 4
    for entry, threads in zip(ladder, planned, strict=True):
        assert entry["options"]["threads"] == str(threads)
        assert x264_threads(tmp_path / "out" / entry["name"]) == threads
