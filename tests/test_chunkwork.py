"""A chunked run's jobs as the worker runs them (api/jobs/chunkwork.py), without the job system:
the preview (the lowest rung over the whole video, the analysis, the thumbnails), the chunks
(every other rung), the audio, then the early presentation and the assembly, on real clips
with rotation, variable frame rate and HDR (issue 15, "Outputs stay right" and "Playable
early"). Both presentations pass the project's verifier; the assembly holds every rung, the
early one the preview's alone, with the same segments."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from api.jobs import chunkwork
from engine.options import TranscodeOptions
from tests.support.clips import chunking_clip
from tests.support.hdr import make_hdr_version, make_sdr_reference
from tests.support.player import MODES, play
from tests.support.verify import verify_output

SEGMENTS = 2  # segments per chunk: several chunks on clips of a few seconds


def hdr_clip(media: Path, clips: Path) -> Path:
    sdr = make_sdr_reference(
        media / "cockatoo.mp4", clips / "work-cockatoo-sdr.mp4", 6, 960, 540, start=2
    )
    return make_hdr_version(sdr, clips / "work-cockatoo-pq.mov", "pq")


def generated(media: Path, clips: Path) -> Path:
    dest = clips / "work-generated.mp4"
    return dest if dest.exists() else chunking_clip(dest, "960x540")


SOURCES: dict[str, tuple[Callable[[Path, Path], Path], float]] = {
    "generated": (generated, 2.0),
    "rotated": (lambda media, clips: media / "rotate-buck-bunny.mp4", 0.5),
    "vfr": (lambda media, clips: media / "cursed-vfr.mp4", 2.0),
    "hdr-pq": (hdr_clip, 1.0),
}


class Run(NamedTuple):
    source: Path
    work: Path
    plan: chunkwork.JobPlan
    early: dict[str, Any]
    full: dict[str, Any]


_RUNS: dict[str, Run] = {}


def run_jobs(name: str, media: Path, factory: pytest.TempPathFactory) -> Run:
    """The run's jobs in order, once per clip (the tests below share them)."""
    if name in _RUNS:
        return _RUNS[name]
    get, segment_seconds = SOURCES[name]
    clips = factory.getbasetemp() / "chunkwork-clips"
    clips.mkdir(exist_ok=True)
    source = get(media, clips)
    work = factory.mktemp(f"chunkwork-{name}")
    options = TranscodeOptions(segment_seconds=segment_seconds)
    plan = chunkwork.plan_job(source, options, SEGMENTS, 1)
    assert plan.chunks >= 2 and plan.preview_rungs == 1, plan
    parts = work / "parts"
    chunkwork.preview_job(source, options, SEGMENTS, 1, parts / chunkwork.PREVIEW_FOLDER)
    for index in range(plan.chunks):
        folder = parts / chunkwork.chunk_folder(index)
        chunkwork.chunk_job(source, options, SEGMENTS, 1, index, folder)
    if plan.audio:
        chunkwork.audio_job(source, options, parts / chunkwork.AUDIO_FOLDER)
    # Each job moves what it presents out of its copy of the parts, as the workers' do.
    early_parts, full_parts = work / "early-parts", work / "full-parts"
    shutil.copytree(parts, early_parts)
    shutil.copytree(parts, full_parts)
    early = chunkwork.early_job(source, options, SEGMENTS, 1, early_parts, work / "early")
    full = chunkwork.assemble_job(source, options, SEGMENTS, 1, full_parts, work / "full")
    _RUNS[name] = Run(source, work, plan, early, full)
    return _RUNS[name]


@pytest.mark.parametrize("name", list(SOURCES))
def test_preview_chunks_audio_early_and_assembly(
    name: str, media: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    source, work, plan, early, full = run_jobs(name, media, tmp_path_factory)
    assert verify_output(work / "early", source) == []
    assert verify_output(work / "full", source) == []
    rungs = [r["name"] for r in full["ladder"]["video"]]
    assert [r["name"] for r in early["ladder"]["video"]] == rungs[-1:]
    assert len(rungs) >= 2
    assert early["early"] == {"rungs": rungs[-1:]}
    low = rungs[-1]
    assert sorted(p.name for p in (work / "full" / low).iterdir()) == sorted(
        p.name for p in (work / "early" / low).iterdir()
    )
    for segment in (work / "early" / low).glob("*.m4s"):
        assert segment.read_bytes() == (work / "full" / low / segment.name).read_bytes()
    # Every rung covers the whole video, the top one from the chunks.
    durations = {r: full["renditions"][r]["duration"] for r in rungs}
    assert max(durations.values()) - min(durations.values()) < 1 / plan_rate(full) + 1e-6
    assert full["chunked"]["chunks"][0]["start_frame"] == 0
    assert len(full["chunked"]["chunks"]) == plan.chunks
    for presentation in ("early", "full"):
        report = json.loads((work / presentation / "report.json").read_text())
        for name in ("poster", "storyboard", "storyboard_vtt"):
            assert (work / presentation / report["output"][name]).is_file()
        assert report["output"]["download"]["duration"] > 0


_WHOLE: dict[str, tuple[Path, dict[str, Any]]] = {}


def run_without_preview(
    name: str, media: Path, factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The same clip's run with no preview part (`preview_rungs` 0, the default): the chunks
    encode every rung and tap their ranges; (its folder, the assembly's report)."""
    if name in _WHOLE:
        return _WHOLE[name]
    ref = run_jobs(name, media, factory)
    work = factory.mktemp(f"chunkwork-whole-{name}")
    options = TranscodeOptions(segment_seconds=SOURCES[name][1])
    plan = chunkwork.plan_job(ref.source, options, SEGMENTS, 0)
    assert plan.preview_rungs == 0 and plan.chunks == ref.plan.chunks
    parts = work / "parts"
    for index in range(plan.chunks):
        folder = parts / chunkwork.chunk_folder(index)
        chunkwork.chunk_job(ref.source, options, SEGMENTS, 0, index, folder)
    if plan.audio:
        chunkwork.audio_job(ref.source, options, parts / chunkwork.AUDIO_FOLDER)
    full = chunkwork.assemble_job(ref.source, options, SEGMENTS, 0, parts, work / "full")
    _WHOLE[name] = (work, full)
    return _WHOLE[name]


@pytest.mark.parametrize("name", list(SOURCES))
def test_without_a_preview_the_chunks_make_everything(
    name: str, media: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No preview part: the assembly merges the chunks' taps (engine/tapmerge.py): its
    poster and storyboard are the preview's (one decode of the whole video, as the single
    pass's) to the byte, its rungs are cut where the preview run's are, and it passes the
    verifier."""
    ref = run_jobs(name, media, tmp_path_factory)
    work, full = run_without_preview(name, media, tmp_path_factory)
    assert verify_output(work / "full", ref.source) == []
    rungs = [r["name"] for r in full["ladder"]["video"]]
    assert rungs == [r["name"] for r in ref.full["ladder"]["video"]] and "early" not in full
    for key in ("poster", "poster_time", "storyboard", "storyboard_vtt", "thumbnail_count"):
        assert full["output"][key] == ref.full["output"][key], key
    for key in ("poster", "storyboard", "storyboard_vtt"):
        file = full["output"][key]
        assert (work / "full" / file).read_bytes() == (ref.work / "full" / file).read_bytes()
    # Every rung cut at the same boundaries (the bytes differ: x264's threads per rung follow
    # how many rungs a job encodes).
    for rung in rungs:
        ours, theirs = full["renditions"][rung], ref.full["renditions"][rung]
        assert ours["segment_durations"] == theirs["segment_durations"], rung


@pytest.mark.browser
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("presentation", ["early", "full", "whole"])
def test_the_browser_plays_both_presentations(
    presentation: str, mode: str, media: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """hls.js, native HLS, dash.js and Shaka play the early and the complete presentation of
    a chunked run, and the presentation of a run without a preview (`whole`: real footage
    with a rotation matrix, chunks of one second)."""
    _, work, _, early, full = run_jobs("rotated", media, tmp_path_factory)
    report = early if presentation == "early" else full
    if presentation == "whole":
        work, report = run_without_preview("rotated", media, tmp_path_factory)
        presentation = "full"
    until = report["source"]["duration"] * 0.8
    playback = play(work / presentation, mode, timeout=60, until=until)
    assert not playback.failures(min_time=until * 0.99), playback.summary()
    assert playback.decoded_frames > 0 and playback.audio_decoded_bytes > 0, playback.summary()
    assert playback.video_height > playback.video_width  # the rotation: upright, portrait


def plan_rate(report: dict[str, Any]) -> float:
    return float(Fraction(report["output"]["frame_rate"]))
