"""Detector-type moderation models (issue 5, "Keyframe moderation": "Models are pluggable by
configuration ...; a NudeNet (AGPL) detector may be an optional extra").

NudeNet is not installed here (an optional extra, never a default dependency), so the
adapter is tested on a detector of known outputs that the test builds as a real ONNX graph
(tests/support/onnx_stub.py `colour_detector`: YOLOv8's output layout, one box per grid
cell, class c scored by the cell's mean of channel c), run by onnxruntime through the same
code as any model: on real frames from tests/media against the expected numbers, on
frames of known colours through the routing, and through the real app, configured only by
settings, as the worker runs it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from litestar.testing import TestClient

from api.core import lifecycle
from api.core.settings import Settings, SettingsError
from api.safety.config import model_config
from api.safety.routing import decide, moderation_findings
from api.safety.startup import check_startup
from classifiers.moderation import (
    ModelConfig,
    ModelError,
    ModerationAnalyzer,
    ModerationModel,
    default_model_path,
    padded,
    prepare,
)
from classifiers.sampling import FrameSampler, SamplingSpec
from tests.conftest import MEDIA
from tests.support.api import api_client, auth, register
from tests.support.clips import ffmpeg
from tests.support.frames import decoded_frames
from tests.support.onnx_stub import COLOUR_LABELS, colour_detector, expected_colour_scores

SIZE, GRID = 64, 4
REAL_CLIPS = ("cockatoo.mp4", "edts.mp4", "sar_2x1.mp4")  # 14 s, 9 s, 5 s


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("detectors")


@pytest.fixture(scope="module")
def detector(models: Path) -> Path:
    return colour_detector(models / "colour.onnx", SIZE, GRID)


def config_for(path: Path, **changes: Any) -> ModelConfig:
    """How NudeNet's 320n.onnx is fed (RGB / 255, NCHW, padded to a square), at SIZE."""
    base = ModelConfig(
        path=str(path),
        kind="detector",
        fit="pad",
        input_size=SIZE,
        resize=SIZE,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        scale=1 / 255,
        channels="RGB",
        layout="NCHW",
        labels=COLOUR_LABELS,
        counted=("red",),
        activation="none",
        jpeg_quality=0,
    )
    return replace(base, **changes)


def flat_frame(rgb: tuple[int, int, int], width: int = 90, height: int = 160) -> Any:
    """A decoded-looking frame of one colour (yuv420p, as the engine's taps get them)."""
    array = np.empty((height, width, 3), dtype=np.uint8)
    array[:, :] = rgb
    return av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")


def sampled_real_frames(per_clip: int = 5) -> list[Any]:
    frames = []
    for name in REAL_CLIPS:
        taken = 0
        for frame, t in decoded_frames(MEDIA / name):
            if t >= taken:  # one a second
                frames.append(frame)
                taken += 1
            if taken == per_clip:
                break
    return frames


# ------------------------------------------------------------------------------ the adapter


def test_real_frames_score_what_the_detector_says(detector: Path) -> None:
    """Per frame and label: the best box's class score, on real footage."""
    config = config_for(detector, batch_size=4)
    model = ModerationModel(config)
    frames = sampled_real_frames()
    assert len(frames) == 5 * len(REAL_CLIPS)
    prepared = np.stack([prepare(frame, config) for frame in frames])
    got = np.concatenate([model.scores(prepared[i : i + 4]) for i in range(0, len(frames), 4)])
    expected = np.stack([expected_colour_scores(p, GRID) for p in prepared])
    assert got.shape == (len(frames), 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Real footage, not flat colours: the scores differ between frames and labels.
    assert len({round(float(v), 3) for v in got[:, 0]}) > len(frames) // 2
    assert np.all((got >= 0.0) & (got <= 1.0))


def test_both_output_layouts_and_a_fixed_batch_give_the_same_scores(models: Path) -> None:
    frames = sampled_real_frames(per_clip=3)
    reference = ModerationModel(config_for(colour_detector(models / "a.onnx", SIZE, GRID)))
    prepared = np.stack([prepare(f, reference.config) for f in frames])
    expected = reference.scores(prepared)
    boxes_first = colour_detector(models / "b.onnx", SIZE, GRID, boxes_last=False)
    single = colour_detector(models / "c.onnx", SIZE, GRID, batch=1)
    for path in (boxes_first, single):
        model = ModerationModel(config_for(path, batch_size=4))
        np.testing.assert_allclose(model.scores(prepared), expected, atol=1e-6)
    assert ModerationModel(config_for(single)).fixed_batch == 1


def test_pad_keeps_the_aspect_and_pads_right_or_bottom() -> None:
    portrait = padded(flat_frame((255, 255, 255), 90, 160), SIZE)
    assert portrait.shape == (SIZE, SIZE, 3)
    width = round(90 * SIZE / 160)  # 36
    assert portrait[:, : width - 1].min() >= 250  # the picture, scaled, at the left
    assert portrait[:, width:].max() == 0  # black on the right
    landscape = padded(flat_frame((255, 255, 255), 160, 90), SIZE)
    assert landscape[: width - 1].min() >= 250 and landscape[width:].max() == 0
    # "crop" (the classifiers' fit) fills the whole square instead.
    cropped = prepare(flat_frame((255, 255, 255), 90, 160), ModelConfig(resize=80, input_size=64))
    assert cropped.shape == (64, 64, 3) and cropped.min() >= 250


@pytest.mark.parametrize(
    ("rgb", "counted", "outcome"),
    [
        ((255, 0, 0), ("red",), lifecycle.REJECTED),  # red 1.0 > 0.95
        ((0, 180, 0), ("green",), lifecycle.IN_REVIEW),  # green 180/255 = 0.706 > 0.7
        ((0, 120, 0), ("green",), lifecycle.PUBLISHED),  # green 0.47
        ((255, 0, 0), ("blue",), lifecycle.PUBLISHED),  # what is found is not counted
    ],
)
def test_detector_scores_route_the_video(
    detector: Path, rgb: tuple[int, int, int], counted: tuple[str, ...], outcome: str
) -> None:
    config = config_for(detector, counted=counted)
    analyzer = ModerationAnalyzer(config, FrameSampler(SamplingSpec()), inference="thread")
    for second in range(5):
        analyzer.on_video(flat_frame(rgb), float(second))
    result = analyzer.result()
    assert result["error"] is None and result["kind"] == "detector"
    assert result["frames"] == 5
    assert set(result["categories"]) == set(counted)
    level = max(rgb[COLOUR_LABELS.index(label)] for label in counted) / 255
    stats = result["categories"][counted[0]]
    # Through yuv420p and back, limited range: 255 comes back as 252.
    assert stats["sustained"] == pytest.approx(level, abs=0.02)
    assert decide(moderation_findings(result, Settings())).status == outcome


# ----------------------------------------------------------------------- configuration errors


def test_a_detector_whose_classes_do_not_match_the_labels_is_named(models: Path) -> None:
    five = colour_detector(models / "five.onnx", SIZE, GRID, labels=5)
    with pytest.raises(ModelError, match=rf"{five}.*\[N, 4 \+ labels, boxes\].*= 7") as caught:
        ModerationModel(config_for(five))
    assert "9, 16]" in str(caught.value)
    # The same file with five labels configured works.
    names = ("a", "b", "c", "d", "e")
    assert ModerationModel(config_for(five, labels=names, counted=("a",))).scores(
        np.zeros((1, SIZE, SIZE, 3), dtype=np.uint8)
    ).shape == (1, 5)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"kind": "segmenter"}, "kind 'segmenter' must be classifier or detector"),
        ({"fit": "stretch"}, "fit 'stretch' must be crop or pad"),
        ({"path": ""}, "a detector needs its model file's path"),  # not open_nsfw's
        ({"layout": "NHWC"}, "input images is"),
    ],
)
def test_a_detector_configuration_that_cannot_work_is_an_error(
    detector: Path, change: dict[str, Any], words: str
) -> None:
    with pytest.raises(ModelError, match=words):
        ModerationModel(replace(config_for(detector), **change))


def test_a_classifier_configured_as_a_detector_is_an_error() -> None:
    with pytest.raises(ModelError, match=r"open_nsfw\.onnx: a detector's output must be"):
        ModerationModel(ModelConfig(path=default_model_path(), kind="detector"))


# --------------------------------------------------------------------------------- settings

DETECTOR_ENV = {
    "REELFORGE_MODERATION_KIND": "detector",
    "REELFORGE_MODERATION_FIT": "pad",
    "REELFORGE_MODERATION_INPUT_SIZE": str(SIZE),
    "REELFORGE_MODERATION_RESIZE": str(SIZE),
    "REELFORGE_MODERATION_MEAN": "0,0,0",
    "REELFORGE_MODERATION_STD": "1,1,1",
    "REELFORGE_MODERATION_SCALE": str(1 / 255),
    "REELFORGE_MODERATION_CHANNELS": "RGB",
    "REELFORGE_MODERATION_LAYOUT": "NCHW",
    "REELFORGE_MODERATION_LABELS": ",".join(COLOUR_LABELS),
    "REELFORGE_MODERATION_COUNTED": "red",
    "REELFORGE_MODERATION_ACTIVATION": "none",
    "REELFORGE_MODERATION_JPEG_QUALITY": "0",
}


def test_the_detector_is_configured_by_settings(detector: Path, tmp_path: Path) -> None:
    env = {
        "REELFORGE_DATA_DIR": str(tmp_path),
        "REELFORGE_MODERATION_MODEL": str(detector),
        **DETECTOR_ENV,
    }
    settings = Settings.from_env(env)
    assert model_config(settings) == config_for(detector)
    check_startup(settings)
    for change, words in (
        ({"LABELS": "a,b", "COUNTED": "a"}, r"4 \+ labels = 6"),
        ({"KIND": "segmenter"}, "kind 'segmenter'"),
        ({"FIT": "stretch"}, "fit 'stretch'"),
    ):
        wrong = {f"REELFORGE_MODERATION_{k}": v for k, v in change.items()}
        with pytest.raises(SettingsError, match=f"REELFORGE_MODERATION_MODEL: .*{words}"):
            check_startup(Settings.from_env({**env, **wrong}))


# ---------------------------------------------------------- end to end, configured by settings


def colour_clip(folder: Path, name: str, colour: str) -> Path:
    path = folder / f"{name}.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c={colour}:size=240x426:rate=15:duration=3",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def detector_app(
    detector: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient[Any]]:
    overrides: dict[str, Any] = {
        "moderation_model": str(detector),
        "moderation_kind": "detector",
        "moderation_fit": "pad",
        "moderation_input_size": SIZE,
        "moderation_resize": SIZE,
        "moderation_mean": (0.0, 0.0, 0.0),
        "moderation_scale": 1 / 255,
        "moderation_channels": "RGB",
        "moderation_layout": "NCHW",
        "moderation_labels": COLOUR_LABELS,
        "moderation_counted": ("red",),
        "moderation_jpeg_quality": 0,
    }
    with api_client(tmp_path_factory.mktemp("detector-app"), **overrides) as client:
        yield client


def test_uploads_are_routed_by_the_configured_detector(
    detector_app: TestClient[Any], tmp_path: Path
) -> None:
    client = detector_app
    _, token = register(client)
    outcomes: dict[str, str] = {}
    for name, colour in (("red", "red"), ("navy", "navy")):
        data = colour_clip(tmp_path, name, colour).read_bytes()
        ticket = client.post(
            "/v1/videos/upload-url",
            json={"file_size_bytes": len(data), "content_type": "video/mp4"},
            headers=auth(token),
        ).json()
        vid = ticket["video_id"]
        put = client.put(f"/v1/videos/{vid}/file", content=data, headers=auth(token))
        assert put.status_code == 200, put.text
        published = client.post(
            f"/v1/videos/{vid}/publish", json={"caption": name}, headers=auth(token)
        )
        assert published.status_code == 202, published.text
        outcomes[name] = vid
    settled: dict[str, Any] = {}
    deadline = time.monotonic() + 240
    while len(settled) < len(outcomes):
        assert time.monotonic() < deadline, f"not settled: {set(outcomes) - set(settled)}"
        for name, vid in outcomes.items():
            body = client.get(f"/v1/videos/{vid}", headers=auth(token)).json()
            if body["status"] not in ("uploaded", "processing"):
                settled[name] = body
        time.sleep(0.25)
    assert settled["red"]["status"] == "rejected", settled["red"]["status_reason"]
    assert "classified as red" in settled["red"]["status_reason"]
    assert settled["navy"]["status"] == "published", settled["navy"]["status_reason"]
