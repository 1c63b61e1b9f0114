"""Known-bad content: PDQ hashes with borders trimmed, matched by Hamming distance (issue 5,
"Known-bad content" and "Evidence": "PDQ: a blocklisted clip is caught after re-encode at a
lower bitrate, resize and 5% noise; unrelated clips are not").

The blocklisted clip is real footage (the first 8 s of tests/media/cockatoo.mp4); its
re-uploads are made with the system ffmpeg the way someone dodging a takedown would: a lower
bitrate, half the size, 5 % noise (13 of 255 levels), letterbox bars, and all of them at
once. The unrelated clips are every other real video in tests/media and generated
patterns. Each clip is hashed by the analyzer the engine runs (sampler + `PdqAnalyzer`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifiers.pdq import (
    DEFAULT_MAX_DISTANCE,
    PdqAnalyzer,
    PdqSpec,
    content_box,
    distances,
    hash_gray,
    match,
    trim_borders,
)
from classifiers.sampling import FrameSampler, SamplingSpec
from tests.conftest import MEDIA, media_files
from tests.support.clips import ffmpeg
from tests.support.frames import AUDIO_ONLY, decoded_frames

BLOCKED_SOURCE = "cockatoo.mp4"
SECONDS = "8"
X264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-an"]
# Re-uploads of the blocklisted clip: the ffmpeg arguments that make each one.
EVASIONS: dict[str, list[str]] = {
    "lower-bitrate": ["-b:v", "250k", "-maxrate", "250k", "-bufsize", "500k"],
    "half-size": ["-vf", "scale=iw/2:ih/2", "-crf", "23"],
    "noise-5pct": ["-vf", "noise=alls=13:allf=t", "-crf", "23"],
    "letterboxed": ["-vf", "scale=1080:-2,pad=1080:1920:0:(oh-ih)/2:black", "-crf", "23"],
    "all-at-once": [
        *("-vf", "scale=iw/2:ih/2,noise=alls=13:allf=t,pad=iw:ih*2:0:(oh-ih)/2:black"),
        *("-b:v", "300k", "-maxrate", "300k", "-bufsize", "600k"),
    ],
}
PATTERNS = {
    "testsrc2": "testsrc2=size=640x360:rate=25",
    "mandelbrot": "mandelbrot=size=640x360:rate=25",
    "smptehdbars": "smptehdbars=size=640x360:rate=25",
    "life": "life=size=320x240:rate=25:mold=10:ratio=0.5:death_color=#C83232:life_color=#00ff00",
    "gradients": "gradients=size=640x360:rate=25:speed=0.05",
}
UNRELATED_MEDIA = [
    name for name in media_files() if name not in AUDIO_ONLY and name != BLOCKED_SOURCE
]


def pdq_hashes(path: Path) -> list[dict[str, Any]]:
    """What the engine's PDQ tap records for a clip."""
    sampler = FrameSampler(SamplingSpec())
    analyzer = PdqAnalyzer(PdqSpec(), sampler)
    for frame, t in decoded_frames(path):
        analyzer.on_video(frame, t)
    hashes: list[dict[str, Any]] = analyzer.result()["hashes"]
    return hashes


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("pdq-clips")

    def build(name: str) -> Path:
        path = folder / f"{name}.mp4"
        if path.exists():
            return path
        source = MEDIA / BLOCKED_SOURCE
        if name == "original":
            ffmpeg("-i", str(source), "-t", SECONDS, *X264, "-crf", "18", str(path))
        elif name in EVASIONS:
            ffmpeg("-i", str(build("original")), *X264, *EVASIONS[name], str(path))
        else:
            graph = PATTERNS[name]
            ffmpeg("-f", "lavfi", "-i", graph, "-t", "6", *X264, "-crf", "23", str(path))
        return path

    return build


@pytest.fixture(scope="module")
def blocklist(clips: Callable[[str], Path]) -> list[tuple[int, str]]:
    """The blocklisted clip's hashes as a moderator's blocklisting stores them."""
    hashes = [h for h in pdq_hashes(clips("original")) if h["quality"] >= PdqSpec().min_quality]
    assert len(hashes) >= 6, hashes
    return list(enumerate(h["hash"] for h in hashes))


@pytest.mark.parametrize("evasion", sorted(EVASIONS))
def test_a_reupload_of_a_blocklisted_clip_is_caught(
    evasion: str, clips: Callable[[str], Path], blocklist: list[tuple[int, str]]
) -> None:
    frames = pdq_hashes(clips(evasion))
    found = match(frames, blocklist)
    assert found, f"{evasion}: no frame within {DEFAULT_MAX_DISTANCE} bits"
    assert found[0].distance <= DEFAULT_MAX_DISTANCE
    # Not one lucky frame: most of the re-upload's frames find their original.
    matched_frames = {m.time for m in found}
    assert len(matched_frames) >= len(frames) // 2, (evasion, len(matched_frames), len(frames))


@pytest.mark.parametrize("name", [*UNRELATED_MEDIA, *sorted(PATTERNS)])
def test_unrelated_clips_are_not_caught(
    name: str, clips: Callable[[str], Path], blocklist: list[tuple[int, str]]
) -> None:
    path = MEDIA / name if name in UNRELATED_MEDIA else clips(name)
    frames = pdq_hashes(path)
    assert frames, f"{name}: nothing hashed"
    assert match(frames, blocklist) == []
    table = distances([f["hash"] for f in frames], [h for _, h in blocklist])
    assert int(table.min()) > DEFAULT_MAX_DISTANCE + 10, int(table.min())


def test_flat_frames_are_never_matched(blocklist: list[tuple[int, str]]) -> None:
    """Black or flat frames all hash alike; their quality keeps them out of any match."""
    black = hash_gray(np.zeros((360, 640), dtype=np.uint8))
    assert black[1] < PdqSpec().min_quality
    frames = [{"time": 0.0, "hash": black[0], "quality": black[1]}]
    assert match(frames, [(1, black[0]), *blocklist]) == []


def test_letterbox_and_pillarbox_bars_are_trimmed() -> None:
    rng = np.random.default_rng(5)
    picture = (rng.random((90, 160)) * 255).astype(np.uint8)
    picture = np.kron(picture, np.ones((4, 4), dtype=np.uint8))  # 360x640, some structure
    framed = np.full((720, 800), 16, dtype=np.uint8)  # limited-range black bars
    framed[180:540, 80:720] = picture
    # With 3 % noise in the bars too: they stay bars.
    noisy = np.clip(framed + rng.normal(0, 8, framed.shape), 0, 255).astype(np.uint8)
    for image in (framed, noisy):
        top, bottom, left, right = content_box(image)
        assert (top, bottom, left, right) == (180, 540, 80, 720)
    assert trim_borders(framed).shape == picture.shape
    assert hash_gray(trim_borders(framed))[0] == hash_gray(picture)[0]


def test_trimming_never_eats_the_whole_picture() -> None:
    flat = np.full((400, 400), 30, dtype=np.uint8)
    top, bottom, left, right = content_box(flat, PdqSpec(max_trim=0.4))
    assert bottom - top >= 400 * 0.2 - 4 and right - left >= 400 * 0.2 - 4


def test_hamming_distances() -> None:
    zero, ones = "0" * 64, "f" * 64
    one_bit = "0" * 63 + "1"
    table = distances([zero, ones], [zero, one_bit, ones])
    assert table.tolist() == [[0, 1, 256], [256, 255, 0]]
    frames = [{"time": 1.0, "hash": one_bit, "quality": 100}]
    found = match(frames, [(7, zero), (8, ones)], max_distance=1)
    assert [(m.entry_id, m.distance, m.time) for m in found] == [(7, 1, 1.0)]
