"""Known-bad content: PDQ perceptual hashes of sampled frames, borders trimmed first, matched by
Hamming distance against a blocklist (issue 5, "Known-bad content").

PDQ (Meta's "PDQ" perceptual hash, `pdqhash`): a 256-bit DCT hash of the luma, robust to
re-encoding, resizing and noise, not to crops; letterbox and pillarbox bars are a crop in
disguise, so they are trimmed first: the uniform edge rows and columns of a small copy of the
frame are found (4×4 block means, so noise in the bars does not hide them, then refined to
the pixel), the picture inside is cut from the full frame and scaled to `long_side` pixels on
its long side (PDQ reduces to 64×64 anyway; this makes the hash independent of the upload's
size and of the bars, and costs ~3 ms instead of ~45 ms at 1080x1920), and hashed.

PDQ's quality (0–100) says how much structure a frame has: flat frames (fades, black) all
hash alike, so hashes under `min_quality` are neither blocklisted nor matched (Meta's
guidance is to discard quality < 50).

Matching: Hamming distance over the 256 bits, a match when ≤ `max_distance` (default 31,
Meta's recommended threshold).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np

from classifiers.sampling import FrameSampler

DEFAULT_MAX_DISTANCE = 31
DEFAULT_MIN_QUALITY = 50
HASH_BITS = 256
MATCH_CHUNK = 4096  # blocklist rows compared at once (frames × rows × 32 bytes of memory)


@dataclass(frozen=True, slots=True)
class PdqSpec:
    """Picklable PDQ settings."""

    long_side: int = 512
    min_quality: int = DEFAULT_MIN_QUALITY
    # A row or column is border while its luma (4×4 block means) varies less than this ...
    border_std: float = 4.0
    # ... and, to the pixel at the picture's edge, while a single row's luma does.
    row_std: float = 8.0
    max_trim: float = 0.4  # never cut more than this share from one side


def block_means(gray: np.ndarray, block: int = 4) -> np.ndarray:
    """Mean of each `block`×`block` tile: averages away grain and noise before trimming."""
    h, w = (gray.shape[0] // block) * block, (gray.shape[1] // block) * block
    tiles = gray[:h, :w].astype(np.float32).reshape(h // block, block, w // block, block)
    return tiles.mean(axis=(1, 3))


def _edge(uniform: np.ndarray, limit: int) -> int:
    """How many leading entries of `uniform` are True, at most `limit`."""
    run = int(np.argmin(uniform)) if not uniform.all() else len(uniform)
    return min(run, limit)


def content_box(gray: np.ndarray, spec: PdqSpec = PdqSpec()) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the picture inside uniform bars, in `gray`'s pixels.

    Any uniform edge rows go, whatever their colour, so a clip and the same clip with bars
    added are cut to the same picture (its own uniform edges included).
    """
    block = 4
    means = block_means(gray, block)
    if means.size == 0:
        return 0, gray.shape[0], 0, gray.shape[1]
    row_flat = means.std(axis=1) < spec.border_std
    col_flat = means.std(axis=0) < spec.border_std
    rows, cols = means.shape
    top = _edge(row_flat, int(rows * spec.max_trim))
    bottom = _edge(row_flat[::-1], int(rows * spec.max_trim))
    left = _edge(col_flat, int(cols * spec.max_trim))
    right = _edge(col_flat[::-1], int(cols * spec.max_trim))
    return top * block, gray.shape[0] - bottom * block, left * block, gray.shape[1] - right * block


def refine_box(
    gray: np.ndarray, box: tuple[int, int, int, int], spec: PdqSpec = PdqSpec()
) -> tuple[int, int, int, int]:
    """Move the box's edges inward past single flat rows/columns (the 4-pixel blocks of
    `content_box` leave up to 3 rows of bar inside; a sliver of bar moves the hash)."""
    top, bottom, left, right = box
    limit = spec.row_std

    def flat_row(r: int) -> bool:
        return float(gray[r, left:right].std()) < limit

    def flat_col(c: int) -> bool:
        return float(gray[top:bottom, c].std()) < limit

    for _ in range(4):
        if top < bottom - 1 and flat_row(top):
            top += 1
        if bottom - 1 > top and flat_row(bottom - 1):
            bottom -= 1
        if left < right - 1 and flat_col(left):
            left += 1
        if right - 1 > left and flat_col(right - 1):
            right -= 1
    return top, bottom, left, right


def trim_borders(gray: np.ndarray, spec: PdqSpec = PdqSpec()) -> np.ndarray:
    top, bottom, left, right = refine_box(gray, content_box(gray, spec), spec)
    return gray[top:bottom, left:right]


def hash_gray(gray: np.ndarray) -> tuple[str, int]:
    """PDQ of a luma image: (64 hex digits, quality 0–100)."""
    import pdqhash

    rgb = np.repeat(np.ascontiguousarray(gray, dtype=np.uint8)[:, :, None], 3, axis=2)
    bits, quality = pdqhash.compute(rgb)
    return bits_to_hex(np.asarray(bits)), int(quality)


def bits_to_hex(bits: np.ndarray) -> str:
    packed = np.packbits(np.asarray(bits, dtype=np.uint8).reshape(-1)[:HASH_BITS])
    return packed.tobytes().hex()


def fit(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(width, height))
    return max(2, round(width * scale)), max(2, round(height * scale))


def frame_gray(frame: Any, long_side: int) -> np.ndarray:
    width, height = fit(frame.width, frame.height, long_side)
    return frame.reformat(width=width, height=height, format="gray").to_ndarray()


def full_luma(frame: Any) -> np.ndarray:
    """The frame's luma at full size: the Y plane in place for YUV frames."""
    name = frame.format.name
    if name.startswith(("yuv", "nv12", "gray")) and not name.startswith("gray1"):
        plane = frame.planes[0]
        if plane.width == frame.width and plane.height == frame.height:
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            return rows[:, : plane.width]
    luma: np.ndarray = frame.to_ndarray(format="gray")
    return luma


def picture(frame: Any, spec: PdqSpec = PdqSpec()) -> np.ndarray:
    """The frame's picture without its bars, as luma at `long_side` pixels at most.

    The bars are found on a small copy; the picture is then cut from the full frame and
    scaled on its own, so a letterboxed re-upload's picture is hashed at the same size as
    the original's (not at the fraction of the frame the bars leave it).
    """
    small = frame_gray(frame, spec.long_side)
    top, bottom, left, right = refine_box(small, content_box(small, spec), spec)
    if (top, left) == (0, 0) and (bottom, right) == small.shape:
        return small
    sy, sx = frame.height / small.shape[0], frame.width / small.shape[1]
    y0, y1 = math.ceil(top * sy), math.floor(bottom * sy)
    x0, x1 = math.ceil(left * sx), math.floor(right * sx)
    crop = np.ascontiguousarray(full_luma(frame)[y0:y1, x0:x1])
    if min(crop.shape) < 2:
        return crop
    width, height = fit(crop.shape[1], crop.shape[0], spec.long_side)
    image = av.VideoFrame.from_ndarray(crop, format="gray")
    return image.reformat(width=width, height=height).to_ndarray()


def hash_frame(frame: Any, spec: PdqSpec = PdqSpec()) -> tuple[str, int] | None:
    """PDQ of a decoded frame's picture (bars trimmed); None if too little picture is left."""
    gray = picture(frame, spec)
    if min(gray.shape) < 32:
        return None
    return hash_gray(gray)


POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


def hex_to_bytes(hashes: Sequence[str]) -> np.ndarray:
    """N×32 uint8 from 64-hex-digit hashes (for vectorized Hamming distances)."""
    raw = b"".join(bytes.fromhex(h) for h in hashes)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(hashes), HASH_BITS // 8)


def distances(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """len(a)×len(b) Hamming distances."""
    x, y = hex_to_bytes(a), hex_to_bytes(b)
    if not len(x) or not len(y):
        return np.zeros((len(x), len(y)), dtype=np.int64)
    xor = x[:, None, :] ^ y[None, :, :]
    return POPCOUNT[xor].sum(axis=2).astype(np.int64)


@dataclass(frozen=True, slots=True)
class Match:
    time: float
    hash: str
    entry_id: Any
    distance: int


def match(
    frames: Iterable[dict[str, Any]],
    blocklist: Sequence[tuple[Any, str]],
    max_distance: int = DEFAULT_MAX_DISTANCE,
    min_quality: int = DEFAULT_MIN_QUALITY,
) -> list[Match]:
    """Every (frame, blocklist entry) pair within `max_distance`, closest first.

    `frames`: the analyzer's `hashes` entries ({time, hash, quality}); `blocklist`: (id, hex).
    """
    usable = [f for f in frames if int(f.get("quality", 0)) >= min_quality]
    found = []
    for start in range(0, len(blocklist) if usable else 0, MATCH_CHUNK):
        chunk = blocklist[start : start + MATCH_CHUNK]
        table = distances([f["hash"] for f in usable], [h for _, h in chunk])
        for i, j in zip(*np.nonzero(table <= max_distance), strict=True):
            frame = usable[int(i)]
            found.append(
                Match(float(frame["time"]), frame["hash"], chunk[int(j)][0], int(table[i, j]))
            )
    return sorted(found, key=lambda m: (m.distance, m.time))


@dataclass
class PdqAnalyzer:
    """Hashes the sampled frames (the same ones moderation scores)."""

    spec: PdqSpec
    sampler: FrameSampler
    name: str = "pdq"
    hashes: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    skipped_at: list[float] = field(default_factory=list)  # the sampled times with no hash
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    def on_video(self, frame: Any, time_s: float) -> None:
        if not self.sampler.take(frame, time_s):
            return
        started, cpu = time.perf_counter(), time.thread_time()
        hashed = hash_frame(frame, self.spec)
        if hashed is None:
            self.skipped += 1
            self.skipped_at.append(time_s)
        else:
            digest, quality = hashed
            self.hashes.append({"time": round(time_s, 3), "hash": digest, "quality": quality})
        self.seconds += time.perf_counter() - started
        self.cpu_seconds += time.thread_time() - cpu

    def on_audio(self, frame: Any, time_s: float) -> None:
        return None

    def result(self) -> dict[str, Any]:
        return {
            "hashes": self.hashes,
            "min_quality": self.spec.min_quality,
            "skipped": self.skipped,
            "timing": {"tap_s": round(self.seconds, 4), "tap_cpu_s": round(self.cpu_seconds, 4)},
        }
