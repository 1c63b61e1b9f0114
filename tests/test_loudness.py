"""Loudness normalization (issue 12, part 3; engine/loudness.py, engine/audiopass.py).

Every output's audio track is measured independently with Debian's ffmpeg CLI (`ebur128`,
ITU-R BS.1770-4 / EBU R128, true peak 4× oversampled) on init + segments joined: within ±1 LU
of the target and at most the true-peak ceiling, for generated sources from −40 to −5 LUFS,
real music, a source with huge peaks and the real clips; silence and near-silence keep their
level. The gain and limiter must not move the audio against the video, nor change its length.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.core.settings import Settings, SettingsError
from api.jobs.transcode import Runtime
from engine.audiopass import reencode_audio
from engine.loudness import (
    ABSOLUTE_GATE_LUFS,
    LIMITER_MARGIN_DB,
    MAX_GAIN_DB,
    GainPlan,
    Loudness,
    LoudnessSpec,
    correct_plan,
    plan_gain,
)
from engine.pipeline import TranscodeOptions, transcode
from engine.source import probe
from ladders import AudioRung
from tests.conftest import run_reelforge
from tests.support.loudness import (
    MUSIC,
    PINK,
    SOURCES,
    decoded_audio,
    ebur128,
    output_audio,
    source_at,
)

TARGET = -14.0
CEILING = -1.0
FAST = TranscodeOptions(preset="ultrafast", thumbnails=False)
OFF = replace(FAST, loudness=LoudnessSpec(enabled=False))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("loudness-sources")

    def build(name: str) -> Path:
        graph, lufs = SOURCES[name]
        return source_at(folder, name, graph, lufs)

    return build


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Path, dict[str, Any]]]:
    """`transcode` in this process (the CLI's job without its sandbox), once per source+options."""
    root = tmp_path_factory.mktemp("loudness-out")
    cache: dict[tuple[Path, TranscodeOptions], tuple[Path, dict[str, Any]]] = {}

    def run(source: Path, options: TranscodeOptions = FAST) -> tuple[Path, dict[str, Any]]:
        key = (source, options)
        if key not in cache:
            outdir = root / f"{len(cache):02d}-{source.stem}"
            cache[key] = (outdir, transcode(source, outdir, options))
        return cache[key]

    return run


# --- acceptance ----------------------------------------------------------------------------


def test_the_music_is_installed() -> None:
    assert (MUSIC / "race1-jt.ogg").is_file(), "apt-get install -y extremetuxracer-data"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_output_is_at_target_under_the_ceiling(
    name: str, sources: Callable[[str], Path], job: Callable[..., Any]
) -> None:
    source = sources(name)
    before = ebur128(source)
    outdir, report = job(source)
    after = output_audio(outdir)
    assert abs(after.integrated - TARGET) <= 1.0, (name, before, after, report["loudness"])
    assert after.true_peak <= CEILING, (name, before, after, report["loudness"])
    # The report's figures are the same measurement (our ebur128 on the encoded track).
    loud = report["loudness"]
    assert loud["output"]["integrated_lufs"] == pytest.approx(after.integrated, abs=0.2)
    assert loud["source"]["integrated_lufs"] == pytest.approx(before.integrated, abs=0.5)
    assert loud["target_lufs"] == TARGET and loud["true_peak_ceiling_dbtp"] == CEILING


def test_loud_music_is_turned_down(sources: Callable[[str], Path], job: Callable[..., Any]) -> None:
    """A brickwalled −5 LUFS master: 9 dB down, no limiter needed."""
    source = sources("music_-5")
    assert ebur128(source).integrated >= -6.0  # as loud as limiting this track gets
    _, report = job(source)
    assert report["loudness"]["gain_db"] <= -8.0


def test_huge_peaks_are_limited_not_the_speech(
    sources: Callable[[str], Path], job: Callable[..., Any]
) -> None:
    """Clicks 30 dB over a quiet voice: the limiter takes the clicks, the voice gets the gain."""
    _, report = job(sources("crest_-30"))
    loud = report["loudness"]
    assert loud["limiter_dbfs"] is not None
    assert loud["gain_db"] >= 15


@pytest.mark.parametrize(
    ("graph", "level"),
    [("anullsrc=r=48000:cl=stereo", None), ("anoisesrc=color=white:amplitude=0.0004", None)],
    ids=["digital-silence", "hiss-below-the-gate"],
)
def test_silence_stays_silent(
    graph: str, level: float | None, tmp_path: Path, job: Callable[..., Any]
) -> None:
    source = source_at(tmp_path, "quiet", graph, level)
    before = ebur128(source)
    outdir, report = job(source)
    after = output_audio(outdir)
    assert report["loudness"]["gain_db"] == 0.0
    assert report["loudness"]["rule"] == "silent"
    assert after.integrated <= ABSOLUTE_GATE_LUFS
    assert after.true_peak <= before.true_peak + 1.0  # no +40 dB of noise


def test_near_silence_is_not_lifted(tmp_path: Path, job: Callable[..., Any]) -> None:
    """Room tone at −60 LUFS (above the absolute gate) is left as it is."""
    source = source_at(tmp_path, "roomtone", PINK, -60.0)
    outdir, report = job(source)
    after = output_audio(outdir)
    assert report["loudness"]["rule"] == "quiet"
    assert after.integrated == pytest.approx(-60.0, abs=1.0)


REAL_WITH_AUDIO = ("rotate-buck-bunny.mp4", "video-h265.mp4", "edts.mp4", "0.ts", "cockatoo.mp4")


@pytest.mark.parametrize("name", REAL_WITH_AUDIO)
def test_real_clips(name: str, media: Path, job: Callable[..., Any]) -> None:
    """Real uploads: −45 to −4 LUFS; 0.ts peaks at +2 dBTP (the issue's clipping case);
    rotate-buck-bunny is 5.1 at −45 LUFS as stereo (the gain cap: it ends ~1 LU short);
    cockatoo's track is digital silence."""
    source = media / name
    before = ebur128(source, stereo=True)
    outdir, report = job(source)
    after = output_audio(outdir)
    assert after.true_peak <= CEILING, (before, after, report["loudness"])
    if before.integrated <= ABSOLUTE_GATE_LUFS:
        assert after.integrated <= ABSOLUTE_GATE_LUFS
    else:
        expected = min(TARGET, before.integrated + MAX_GAIN_DB)
        assert abs(after.integrated - expected) <= 1.0, (before, after, report["loudness"])


# --- timing and length ---------------------------------------------------------------------


def onset(samples: np.ndarray, threshold: float) -> int:
    index = np.flatnonzero(np.abs(samples) > threshold)
    assert len(index), "no onset"
    return int(index[0])


def test_audio_stays_in_sync_and_as_long(tmp_path: Path, job: Callable[..., Any]) -> None:
    """Silence, then at 2.000 s a full-scale click and a quiet 1 kHz tone: the gain is ~+30 dB
    and the limiter works hardest right at the onset. The onset lands at the same sample as
    with loudness off (the limiter's look-ahead is compensated, the AAC priming trim holds),
    within 1 ms of 2.000 s, and the track has the same length."""
    graph = ("aevalsrc=exprs='if(gte(t\\,2)\\,if(lt(t\\,2.003)\\,0.95\\,0.01*sin(2*PI*1000*t))"
             "\\,0)':s=48000:c=stereo")  # fmt: skip
    source = source_at(tmp_path, "beep", graph, None)
    on_dir, on = job(source)
    off_dir, off = job(source, OFF)
    assert on["loudness"]["limiter_dbfs"] is not None
    assert on["loudness"]["gain_db"] > 20
    assert "source" not in off["loudness"] and off["loudness"]["enabled"] is False
    normalized, plain = decoded_audio(on_dir), decoded_audio(off_dir)
    assert len(normalized) == len(plain)
    assert on["renditions"]["audio"]["duration"] == off["renditions"]["audio"]["duration"]
    assert on["renditions"]["audio"]["segment_count"] == off["renditions"]["audio"]["segment_count"]
    start_on, start_off = onset(normalized, 0.05), onset(plain, 0.05)
    assert abs(start_on - start_off) <= 48, (start_on, start_off)
    assert abs(start_on - 2 * 48_000) <= 48, start_on


def test_loudness_off_is_the_old_path(
    sources: Callable[[str], Path], job: Callable[..., Any]
) -> None:
    source = sources("pink_-30")
    outdir, report = job(source, OFF)
    assert output_audio(outdir).integrated == pytest.approx(-30.0, abs=1.0)
    assert "loudness_measure" not in report["stages"]
    assert "loudness_output" not in report["stages"]


def test_cli_flags(sources: Callable[[str], Path], tmp_path: Path) -> None:
    """`reelforge transcode --loudness-target -23 --true-peak -2`: EBU R128 broadcast level."""
    source = sources("speech_-40")
    proc = run_reelforge("transcode", str(source), str(tmp_path / "out"), "--json",
                         "--preset", "ultrafast", "--no-thumbnails",
                         "--loudness-target", "-23", "--true-peak", "-2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    after = output_audio(tmp_path / "out")
    assert abs(after.integrated + 23) <= 1.0
    assert after.true_peak <= -2.0


def test_cli_rejects_a_target_out_of_range(sources: Callable[[str], Path], tmp_path: Path) -> None:
    proc = run_reelforge("transcode", str(sources("pink_-30")), str(tmp_path / "out"),
                         "--loudness-target", "3")  # fmt: skip
    assert proc.returncode == 2
    assert "loudness target" in proc.stderr


# --- the plan, as a table ------------------------------------------------------------------

SPEC = LoudnessSpec()
LIMIT = CEILING - LIMITER_MARGIN_DB


@pytest.mark.parametrize(
    ("integrated", "peak", "gain", "limit", "rule"),
    [
        (-23.0, -12.0, 9.0, None, "normalized"),  # peaks stay under: gain only
        (-23.0, -5.0, 9.0, LIMIT, "normalized"),  # gained peaks would pass: limiter
        (-5.0, 3.0, -9.0, None, "normalized"),  # loud: turned down, no limiter needed
        (-14.0, -1.0, 0.0, LIMIT, "normalized"),  # at the target, peaks at the ceiling
        (-48.0, -30.0, MAX_GAIN_DB, LIMIT, "capped"),  # at most MAX_GAIN_DB
        (-55.0, -40.0, 0.0, None, "quiet"),  # near-silence keeps its level
        (-70.0, None, 0.0, None, "silent"),
    ],
)
def test_plan_gain(
    integrated: float, peak: float | None, gain: float, limit: float | None, rule: str
) -> None:
    plan = plan_gain(Loudness(integrated, 0.0, peak), SPEC)
    assert (plan.gain_db, plan.limit_dbfs, plan.rule) == (pytest.approx(gain), limit, rule)


def test_plan_filters() -> None:
    assert GainPlan(0.0, None, "silent").filters() == []
    volume, limiter = GainPlan(6.0, -2.5, "normalized").filters()
    assert volume == ("volume", "volume=6.0000dB:precision=float")
    assert limiter[0] == "alimiter" and "level=0" in limiter[1] and "latency=1" in limiter[1]


@pytest.mark.parametrize(
    ("measured", "plan", "output", "expect"),
    [
        # on target, under the ceiling: kept
        (Loudness(-23, 5, -20), GainPlan(9, None, "normalized"), Loudness(-14.3, 5, -8), None),
        # within the tolerance (the AAC encoder's usual cut on a bright source): kept
        (Loudness(-23, 5, -20), GainPlan(9, None, "normalized"), Loudness(-14.6, 5, -8), None),
        # the AAC encoder cut the top octave: 1.2 LU more gain
        (Loudness(-23, 5, -20), GainPlan(9, None, "normalized"), Loudness(-15.2, 5, -8),
         (10.2, None)),
        # AAC overshoot on an onset: the limiter goes that much (+ slack) lower
        (Loudness(-23, 5, -4), GainPlan(9, LIMIT, "normalized"), Loudness(-14, 5, 0.5),
         (9.0, LIMIT - 1.5 - 0.5)),
        # a true peak of exactly 0 dBTP is over the ceiling too
        (Loudness(-23, 5, -4), GainPlan(9, LIMIT, "normalized"), Loudness(-14, 5, 0.0),
         (9.0, LIMIT - 1.0 - 0.5)),
        # capped already: more gain is not on offer
        (Loudness(-48, 5, -35), GainPlan(MAX_GAIN_DB, LIMIT, "capped"), Loudness(-18, 5, -3),
         None),
        # silence is never corrected
        (Loudness(-70, 0, None), GainPlan(0, None, "silent"), Loudness(-70, 0, None), None),
    ],
)  # fmt: skip
def test_correct_plan(
    measured: Loudness,
    plan: GainPlan,
    output: Loudness,
    expect: tuple[float, float | None] | None,
) -> None:
    again = correct_plan(measured, plan, output, SPEC)
    if expect is None:
        assert again is None
    else:
        assert again is not None and again.corrected
        assert (again.gain_db, again.limit_dbfs) == (pytest.approx(expect[0]), expect[1])


def test_spec_bounds() -> None:
    with pytest.raises(ValueError, match="loudness target"):
        LoudnessSpec(target_lufs=2.0)
    with pytest.raises(ValueError, match="true-peak"):
        LoudnessSpec(true_peak_dbtp=1.0)


def test_the_audio_only_pass_writes_the_same_track(
    sources: Callable[[str], Path], job: Callable[..., Any], tmp_path: Path
) -> None:
    """engine/audiopass.py, which encodes the audio again when the check asks for it, lines
    up with the single decode: with no gain it writes the very same bytes."""
    source = sources("speech_-23")
    outdir, _ = job(source, OFF)
    again = tmp_path / "audio"
    shutil.copytree(outdir / "audio", again)
    info = probe(source)
    reencode_audio(info, AudioRung(), info.output_frame_rate, FAST.segment_seconds,
                   GainPlan(0.0, None, "normalized"), again)  # fmt: skip

    def media(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.iterdir() if p.suffix in (".mp4", ".m4s"))

    names = media(outdir / "audio")
    assert len(names) > 2 and names == media(again)
    for name in names:
        assert (again / name).read_bytes() == (outdir / "audio" / name).read_bytes(), name


def test_settings_reach_the_job(tmp_path: Path) -> None:
    """REELFORGE_LOUDNESS_* / REELFORGE_TRUE_PEAK_DBTP, read once, into every job's options."""
    env = {"REELFORGE_DATA_DIR": str(tmp_path), "REELFORGE_LOUDNESS_TARGET_LUFS": "-23",
           "REELFORGE_TRUE_PEAK_DBTP": "-2"}  # fmt: skip
    options = Runtime(Settings.from_env(env)).options()
    assert options.loudness == LoudnessSpec(enabled=True, target_lufs=-23.0, true_peak_dbtp=-2.0)
    off = Runtime(Settings.from_env({**env, "REELFORGE_LOUDNESS_NORMALIZE": "0"})).options()
    assert off.loudness.enabled is False
    default = Runtime(Settings.from_env({"REELFORGE_DATA_DIR": str(tmp_path)})).options()
    assert default.loudness == LoudnessSpec()
    for name, value in (("REELFORGE_LOUDNESS_TARGET_LUFS", "0"), ("REELFORGE_TRUE_PEAK_DBTP", "3")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({"REELFORGE_DATA_DIR": str(tmp_path), name: value})
