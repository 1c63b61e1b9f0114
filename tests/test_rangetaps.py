"""Split and stitch, the frame taps in the chunks (engine/rangetaps.py) merged by the assembly
(engine/tapmerge.py) into exactly what the single pass's taps produce (issue 15: the
per-frame analyzers run inside the chunk jobs, no second decode of the video): the same
sampled times, moderation scores and summary, PDQ hashes, worst-frame images, poster and
storyboard, on real footage cut at several chunk sizes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.make_source import build_source
from classifiers.moderation import ModelConfig
from classifiers.pdq import PdqSpec
from classifiers.sampling import SamplingSpec
from engine.analysis import AnalysisSpec, build_analyzers, collect_results
from engine.chunked import encode_chunk
from engine.chunks import plan_chunks
from engine.jobs import transcode_limited
from engine.options import TranscodeOptions, plan_encoders, planned_frames
from engine.pipeline import probe_and_check
from engine.rangetaps import TAPS_FILE, RangeTaps
from engine.tapmerge import merge_taps
from engine.thumbnails import POSTER_NAME, STORYBOARD_NAME, STORYBOARD_VTT, ThumbnailTap
from tests.conftest import MEDIA

# 9 s of 854x480 25 fps footage behind an edit list, keyframes every 1.92 s. (Not cockatoo.mp4:
# its later sync samples do not decode on their own, so any chunk after its first is not the
# single pass's pictures: a limit of the chunked decode, engine/chunked.py `RangeDecode`.)
CLIP = MEDIA / "edts.mp4"
THUMB_FILES = (POSTER_NAME, STORYBOARD_NAME, STORYBOARD_VTT)


def options_for(artifacts: Path, **sampling: Any) -> TranscodeOptions:
    spec = AnalysisSpec(
        sampling=SamplingSpec(**sampling),
        moderation=ModelConfig(),
        pdq=PdqSpec(),
        artifacts_dir=str(artifacts),
    )
    return TranscodeOptions(segment_seconds=1.0, analysis=spec)


def untimed(analysis: dict[str, Any]) -> dict[str, Any]:
    """The analysis less its timings (seconds measured, never equal between runs)."""
    return {
        name: {k: v for k, v in part.items() if k != "timing"} for name, part in analysis.items()
    }


def chunked(clip: Path, options: TranscodeOptions, segments: int, work: Path) -> dict[str, Any]:
    """Every chunk of the plan decoded alone with its range taps (no rung encoded), then the
    merge: {"analysis", "thumbs", "folders"}."""
    source = probe_and_check(clip, options.policy)
    encode = plan_encoders(source, options)
    frames = planned_frames(source, encode.frame_rate)
    plan = plan_chunks(
        frames, encode.gop_frames, segments, encode.frame_rate, options.segment_seconds
    )
    assert len(plan.chunks) >= 3
    folders, total = [], 0
    for chunk in plan.chunks:
        folder = work / f"chunk-{chunk.index}"
        frame_time = float(1 / encode.frame_rate)
        taps = RangeTaps(
            options.analysis, True, float(source.duration), chunk.start_frame, frame_time, folder
        )
        result = encode_chunk(
            source, chunk, encode, options, folder, taps.taps, None, [], taps.lead
        )
        taps.close()
        total += result.output_frames
        folders.append(folder)
    analysis, thumbs = merge_taps(
        folders[::-1],  # in any order: the merge orders them
        options.analysis,
        float(source.duration),
        float(total / encode.frame_rate),
        True,
        work / "thumbs",
        work / "analysis",
    )
    return {"analysis": analysis, "thumbs": thumbs, "folders": folders}


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The single pass (the whole ladder, the taps on its one decode)."""
    work = tmp_path_factory.mktemp("single")
    report = transcode_limited(CLIP, work / "out", options_for(work / "analysis"))
    return work, report


@pytest.mark.parametrize("segments", [1, 2])
def test_merged_chunk_taps_are_the_single_pass_taps(
    single: tuple[Path, dict[str, Any]], segments: int, tmp_path: Path
) -> None:
    """1 s and 2 s chunks of real footage: analysis, images, poster, storyboard identical."""
    work, report = single
    merged = chunked(CLIP, options_for(tmp_path / "unused"), segments, tmp_path)
    theirs = report["analysis"]
    assert theirs["moderation"]["frames"] > 10 and theirs["moderation"]["error"] is None
    assert theirs["moderation"]["sampling"]["keyframe"] > 0  # more than the periodic grid
    assert untimed(merged["analysis"]) == untimed(theirs)
    images = {
        entry["image"] for c in theirs["moderation"]["categories"].values() for entry in c["worst"]
    }
    assert images and None not in images
    for name in images:
        assert (tmp_path / "analysis" / name).read_bytes() == (
            work / "analysis" / name
        ).read_bytes()
    assert sorted(p.name for p in (tmp_path / "analysis").iterdir()) == sorted(images)
    out = work / "out"
    for key, value in merged["thumbs"].items():
        assert report["output"][key] == value, key
    for name in THUMB_FILES:
        assert (tmp_path / "thumbs" / name).read_bytes() == (out / name).read_bytes(), name
    # Each chunk analysed a few frames more than it kept, never the whole range.
    analysed = sum(
        len(json.loads((f / TAPS_FILE).read_text())["moderation"]["samples"])
        for f in merged["folders"]
    )
    print(
        f"{segments} segment(s) a chunk: {analysed} frames analysed for",
        theirs["moderation"]["frames"],
    )
    assert theirs["moderation"]["frames"] <= analysed < 2 * theirs["moderation"]["frames"]


def whole(clip: Path, options: TranscodeOptions, work: Path) -> dict[str, Any]:
    """The single pass's taps (a `FrameSampler` and a `ThumbnailTap` fed the top rung's frames
    in order) on one decode of the whole video, no rung encoded."""
    source = probe_and_check(clip, options.policy)
    encode = plan_encoders(source, options)
    frames = planned_frames(source, encode.frame_rate)
    plan = plan_chunks(
        frames, encode.gop_frames, 1 << 30, encode.frame_rate, options.segment_seconds
    )
    assert options.analysis is not None
    analyzers = build_analyzers(options.analysis, float(source.duration))
    work.mkdir(parents=True)
    thumbnails = ThumbnailTap(work)
    result = encode_chunk(
        source, plan.chunks[0], encode, options, work, [thumbnails, *analyzers], None, []
    )
    thumbs = thumbnails.close(float(result.output_frames / encode.frame_rate))
    return {"analysis": collect_results(analyzers), "thumbs": thumbs}


def test_the_merge_replays_the_cap_the_gap_and_scene_samples(tmp_path: Path) -> None:
    """A sampler pushed to its limits (scene samples on most frames, a short gap, a cap the
    video reaches) decides across chunk boundaries exactly as on one decode: on the
    benchmark's real-footage source (12 s, 1080x1920, three clips cut together)."""
    clip = build_source(12.0, tmp_path / "source")
    options = options_for(
        tmp_path / "artifacts", fps=2.0, max_frames=24, scene_threshold=0.03, min_scene_gap=0.3
    )
    reference = whole(clip, options, tmp_path / "whole")
    theirs = reference["analysis"]
    sampling = theirs["moderation"]["sampling"]
    # Scene samples, and the budget of keyframe and scene samples (24 less 19 for the
    # periodic grid, stretched to 0.667 s) used up before the end.
    assert sampling["scene"] > 0 and sampling["scene"] + sampling["keyframe"] == 5
    merged = chunked(clip, options, 1, tmp_path / "chunked")
    assert untimed(merged["analysis"]) == untimed(theirs)
    assert merged["thumbs"] == reference["thumbs"]
    for name in THUMB_FILES:
        assert (tmp_path / "chunked" / "thumbs" / name).read_bytes() == (
            tmp_path / "whole" / name
        ).read_bytes()
