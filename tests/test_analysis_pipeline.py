"""The safety analyzers ride on the engine's single decode (issue 5: "the classifiers read the
frames and audio the ladder already decodes").

A transcode with analysis decodes exactly as many frames as one without, writes the same
ladder, and adds only `report["analysis"]` and two stage timings; the analyzers are built
inside the sandboxed child from a picklable spec; sampling takes one frame a second plus
scene cuts, capped and spread over long videos; an analyzer that fails leaves an error for
routing instead of failing the transcode.
"""

from __future__ import annotations

import pickle
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from classifiers.moderation import ModelConfig
from classifiers.pdq import PdqSpec
from classifiers.sampling import SamplingSpec
from engine import analysis as analysis_module
from engine.analysis import AnalysisSpec, build_analyzers
from engine.errors import EngineError
from engine.jobs import transcode_limited
from engine.pipeline import TranscodeOptions, transcode
from tests.conftest import MEDIA
from tests.support.clips import ffmpeg

BASE_STAGES = {"probe", "decode_encode", "encoder_flush", "thumbnails", "package", "total"}
# With audio: the loudness pre-pass (audio only) and the check of the encoded track.
BASE_STAGES |= {"loudness_measure", "loudness_output"}
# download.mp4, remuxed from the written tracks.
BASE_STAGES |= {"download"}


def full_spec(artifacts: Path | None = None, **sampling: Any) -> AnalysisSpec:
    from classifiers.fingerprint import FingerprintSpec

    return AnalysisSpec(
        sampling=SamplingSpec(**sampling),
        moderation=ModelConfig(),
        pdq=PdqSpec(),
        fingerprint=FingerprintSpec(),
        artifacts_dir=str(artifacts) if artifacts else None,
    )


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def ladder_shape(report: dict[str, Any]) -> Any:
    renditions = {
        name: (r["codecs"], r["segment_count"], r["segment_durations"])
        for name, r in report["renditions"].items()
    }
    # download.mp4's size follows the encoded bytes, which (like the renditions' sizes) may
    # differ between two encodes; what it is made of may not.
    output = dict(report["output"])
    output["download"] = {k: v for k, v in output["download"].items() if k != "bytes"}
    return report["ladder"], renditions, output


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Path]]:
    """The same real clip (AAC audio, 14 s) transcoded without and with analysis; the latter
    through `transcode_limited`, the sandboxed child the worker uses (spawned, as in a
    worker with threads)."""
    root = tmp_path_factory.mktemp("analysis-runs")
    source = MEDIA / "cockatoo.mp4"
    plain = transcode(source, root / "plain", TranscodeOptions())
    keep = threading.Event()
    thread = threading.Thread(target=keep.wait, daemon=True)  # a threaded parent: spawn
    thread.start()
    try:
        options = TranscodeOptions(analysis=full_spec(root / "artifacts"))
        analyzed = transcode_limited(source, root / "analyzed", options)
    finally:
        keep.set()
    return {"plain": (plain, root / "plain"), "analyzed": (analyzed, root / "analyzed")}


def test_one_decode_pass_feeds_the_ladder_and_the_analyzers(runs: dict[str, Any]) -> None:
    plain, _ = runs["plain"]
    analyzed, _ = runs["analyzed"]
    assert analyzed["decode"] == plain["decode"]  # frames, packets, audio frames: the same
    assert analyzed["decode"]["decoded_video_frames"] == 280  # 14 s at 20 fps, decoded once
    assert set(plain["stages"]) == BASE_STAGES
    assert set(analyzed["stages"]) == BASE_STAGES | {"analysis_setup", "analysis"}
    moderation = analyzed["analysis"]["moderation"]
    # One a second, and the source's two keyframes between them (3.8 s and 7.25 s).
    assert moderation["frames"] == 16 and moderation["error"] is None
    assert moderation["sampling"]["keyframe"] == 2
    assert len(analyzed["analysis"]["pdq"]["hashes"]) == 16
    # The fingerprinter heard all of the audio (this clip's is too quiet to give landmarks).
    assert analyzed["analysis"]["fingerprint"]["duration_s"] == pytest.approx(14.0, abs=0.05)


def test_the_ladder_output_is_the_same_with_analysis(runs: dict[str, Any]) -> None:
    (plain, plain_dir), (analyzed, analyzed_dir) = runs["plain"], runs["analyzed"]
    assert tree(plain_dir) == tree(analyzed_dir)
    assert ladder_shape(plain) == ladder_shape(analyzed)
    assert "analysis" not in plain


def test_worst_frames_are_written_where_the_spec_says(runs: dict[str, Any]) -> None:
    analyzed, analyzed_dir = runs["analyzed"]
    artifacts = analyzed_dir.parent / "artifacts"
    worst = analyzed["analysis"]["moderation"]["categories"]["nsfw"]["worst"]
    assert len(worst) == 3 and worst[0]["time"] == 8.0
    for entry in worst:
        image = artifacts / entry["image"]
        assert image.read_bytes()[:3] == b"\xff\xd8\xff"
    assert not any(name.endswith(".jpg") and "frame-" in name for name in tree(analyzed_dir))


def test_the_spec_is_plain_data() -> None:
    spec = full_spec(Path("/tmp/x"))
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert not AnalysisSpec().enabled and spec.enabled


@pytest.fixture(scope="module")
def cuts_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Nine seconds, hard cuts at 2.5 s and 6.2 s (between the 1-second samples; the second
    0.2 s after one)."""
    path = tmp_path_factory.mktemp("cuts") / "cuts.mp4"
    graph = (
        "testsrc2=size=320x568:rate=25:duration=2.5[a];"
        "mandelbrot=size=320x568:rate=25,trim=duration=3.7,setpts=PTS-STARTPTS[b];"
        "color=c=white:size=320x568:rate=25:duration=2.8[c];"
        "[a][b][c]concat=n=3:v=1:a=0"
    )
    ffmpeg("-filter_complex", graph, "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


def sampled(report: dict[str, Any]) -> list[float]:
    return [entry["time"] for entry in report["analysis"]["moderation"]["frame_scores"]]


def test_scene_cuts_are_sampled_between_the_periodic_frames(
    cuts_clip: Path, tmp_path: Path
) -> None:
    spec = AnalysisSpec(moderation=ModelConfig(), pdq=PdqSpec())
    report = transcode(cuts_clip, tmp_path / "out", TranscodeOptions(analysis=spec))
    times = sampled(report)
    sampling = report["analysis"]["moderation"]["sampling"]
    # 0 … 9 s; ultrafast x264 made no keyframe but the first
    assert sampling == {"periodic": 10, "keyframe": 0, "scene": 2, "interval": 1.0}, sampling
    cuts = [t for t in times if t != int(t)]
    assert len(cuts) == 2 and abs(cuts[0] - 2.5) <= 0.04 and abs(cuts[1] - 6.2) <= 0.08, times
    assert [h["time"] for h in report["analysis"]["pdq"]["hashes"]] == times  # same frames


@pytest.mark.parametrize(("gop", "expected"), [(45, [1.5, 4.5, 7.5]), (1, [])])
def test_the_source_keyframes_are_sampled(tmp_path: Path, gop: int, expected: list[float]) -> None:
    """Every keyframe of the source (a 1.5 s GOP, no scene cuts) the periodic samples do not
    take; none from an intra-only source, where every frame is one."""
    path = tmp_path / "gop.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x568:rate=30:duration=8",
           "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-keyint_min", str(gop),
           "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    report = transcode(path, tmp_path / "out", TranscodeOptions(analysis=full_spec()))
    times = sampled(report)
    assert [t for t in times if t != int(t)] == expected, times
    sampling = report["analysis"]["moderation"]["sampling"]
    assert sampling == {"periodic": 8, "keyframe": len(expected), "scene": 0, "interval": 1.0}


def test_the_cap_spreads_samples_over_a_long_video(cuts_clip: Path, tmp_path: Path) -> None:
    spec = AnalysisSpec(moderation=ModelConfig(), sampling=SamplingSpec(max_frames=4))
    report = transcode(cuts_clip, tmp_path / "out", TranscodeOptions(analysis=spec))
    times = sampled(report)
    assert len(times) <= 4
    # 9.04 s over the three quarters of the cap left to periodic samples
    assert report["analysis"]["moderation"]["sampling"]["interval"] == pytest.approx(3.013)
    assert times[:3] == [0.0, 3.04, 6.04]


def test_an_analyzer_that_fails_leaves_an_error_not_a_failed_transcode(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07not really onnx")
    for mode in ("thread", "end"):
        spec = AnalysisSpec(moderation=ModelConfig(path=str(broken)), inference=mode)  # type: ignore[arg-type]
        source = MEDIA / "rotate-buck-bunny.mp4"
        report = transcode(source, tmp_path / mode, TranscodeOptions(analysis=spec))
        error = report["analysis"]["moderation"]["error"]
        assert error and str(broken) in error, error
        assert (tmp_path / mode / "master.m3u8").is_file()


def test_fingerprinting_asked_for_without_its_module_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(analysis_module, "FINGERPRINT_MODULE", "classifiers.no_such_module")
    with pytest.raises(EngineError, match="fingerprinting is enabled"):
        build_analyzers(AnalysisSpec(fingerprint=object()))
    assert build_analyzers(replace(AnalysisSpec(), pdq=PdqSpec()))  # others still build
