"""Landmark ("constellation") audio fingerprints, after Wang 2003, "An Industrial-Strength Audio
Search Algorithm" (Shazam), as audfprint and dejavu implement it (issue 5, "Copyright: audio
fingerprints").

Audio is downmixed to mono at 8 kHz; a short-time spectrum (512-point Hann window, hop 128,
16 ms frames) gives a log-magnitude spectrogram; its local maxima (§2.1 "robust constellation")
that stand out from a running per-band background survive noise, equalization and lossy codecs.
Each peak (the anchor) is paired with the next few peaks in a target zone ahead of it (§2.2
"fast combinatorial hashing"); a pair is a 21-bit hash `f1 | f2 - f1 | t2 - t1` stamped with the
anchor's frame. A clip matches a reference when many of its hashes occur there with the same
time difference (§2.3, done in classifiers/voting.py).

A clip starts anywhere between two of the reference's frames, so its peaks can land a frame
early or late and a pair's `t2 - t1` round the other way. Queries are therefore fingerprinted at
several sub-hop time shifts and the landmarks pooled, as audfprint's `--shifts` does for its
queries (D. Ellis, audfprint, "shifts: number of time shifts to try").

`FingerprintAnalyzer` computes the same fingerprint from the engine's audio taps (48 kHz
stereo float planar frames) while the upload is transcoded; `load_audio` decodes any file with
PyAV for the catalog and the CLI.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from classifiers.filters import decimate, maximum_filter, moving_mean_rows

SAMPLE_RATE = 8000
FFT_SIZE = 512
HOP = 128
FRAME_SECONDS = HOP / SAMPLE_RATE
# The hash layout: anchor bin (8 bits) | frequency step (7 bits, signed) | frame step (6 bits).
F1_BITS, DF_BITS, DT_BITS = 8, 7, 6
HASH_BITS = F1_BITS + DF_BITS + DT_BITS
# 2: narrower peak neighbourhoods below 1 kHz (`low_bins`); catalogs of 1 must be rebuilt.
FORMAT_VERSION = 2


@dataclass(frozen=True, slots=True)
class LandmarkParams:
    """Peak picking and pairing; the defaults are the ones bench/fingerprint_eval.py measured."""

    # A peak is the maximum of its neighbourhood: ± frames in time, ± bins in frequency.
    peak_time_radius: int = 4
    peak_freq_radius: int = 8
    # ... and stands this many dB above the band's running background (±background_frames).
    min_prominence_db: float = 6.0
    background_frames: int = 64
    # ... or is its frame's strongest (within this many dB): a quiet passage held by one loud
    # sustained note keeps its landmarks under noise.
    frame_top_db: float = 1.0
    # Pairs: each anchor with its first `fan_out` peaks 1..max_dt frames ahead, within ±max_df.
    fan_out: int = 6
    max_dt: int = (1 << DT_BITS) - 1
    max_df: int = (1 << (DF_BITS - 1)) - 1
    # Pairs within one frequency bin only say "a note is held"; they were the catalog's most
    # common hashes (slow lookups) and what made steady tones vote for held chords.
    min_df: int = 1
    # Bins below this are mostly rumble and hum.
    min_bin: int = 3
    # Below `low_bins` (1 kHz) a chord's notes lie a bin or two apart: there a peak need only
    # top ±`low_freq_radius` bins, so each note's onset is a landmark of its own (a held pad
    # chord under noise keeps those, while the quiet parts above it drown).
    low_bins: int = 64
    low_freq_radius: int = 4
    # Landmarks pooled over this many time shifts of `HOP / shifts` samples (queries only).
    shifts: int = 1


DEFAULT_PARAMS = LandmarkParams()
# Queries pair each anchor with more targets than references do (as audfprint's denser
# queries: a noise peak that slips in between no longer pushes a reference pair out), at four
# time shifts.
QUERY_PARAMS = replace(DEFAULT_PARAMS, fan_out=8, shifts=4)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Hashes with the frame (of `FRAME_SECONDS`) of their anchor, sorted by frame."""

    hashes: NDArray[np.uint32]
    offsets: NDArray[np.uint32]
    duration_s: float

    def __len__(self) -> int:
        return len(self.hashes)

    def to_json(self) -> dict[str, Any]:
        """A compact JSON form: zlib-compressed little-endian (hash, frame delta) pairs."""
        deltas = np.diff(self.offsets.astype(np.int64), prepend=0).astype("<u4")
        packed = np.stack([self.hashes.astype("<u4"), deltas], axis=1).tobytes()
        return {
            "version": FORMAT_VERSION,
            "sample_rate": SAMPLE_RATE,
            "hop": HOP,
            "duration_s": round(self.duration_s, 3),
            "count": len(self.hashes),
            "hashes": base64.b64encode(zlib.compress(packed, 6)).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fingerprint:
        if data.get("version") != FORMAT_VERSION or data.get("hop") != HOP:
            raise ValueError(f"unsupported fingerprint format: {data.get('version')!r}")
        raw = zlib.decompress(base64.b64decode(data["hashes"]))
        pairs = np.frombuffer(raw, dtype="<u4").reshape(-1, 2)
        offsets = np.cumsum(pairs[:, 1].astype(np.int64)).astype(np.uint32)
        return cls(pairs[:, 0].astype(np.uint32), offsets, float(data["duration_s"]))


def spectrogram(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    """Log-magnitude STFT (frames × bins) in dB of 8 kHz mono samples; frame i starts at i·HOP."""
    samples = np.asarray(samples, dtype=np.float32)
    if len(samples) < FFT_SIZE:
        samples = np.pad(samples, (0, FFT_SIZE - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(samples, FFT_SIZE)[::HOP]
    window = np.hanning(FFT_SIZE + 2)[1:-1].astype(np.float32)
    magnitude = np.abs(np.fft.rfft(frames * window, axis=1)).astype(np.float32)
    return (20.0 * np.log10(np.maximum(magnitude, 1e-5))).astype(np.float32)


def find_peaks(
    spec_db: NDArray[np.float32], params: LandmarkParams = DEFAULT_PARAMS
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The constellation: (frame, bin) of local maxima that rise above the band's background."""
    size = (2 * params.peak_time_radius + 1, 2 * params.peak_freq_radius + 1)
    local_max = maximum_filter(spec_db, size)
    if params.low_bins:
        low = params.low_bins
        narrow = maximum_filter(
            spec_db[:, : low + params.low_freq_radius], (size[0], 2 * params.low_freq_radius + 1)
        )
        local_max[:, :low] = narrow[:, :low]
    background = moving_mean_rows(spec_db, 2 * params.background_frames + 1)
    band = slice(params.min_bin, 1 << F1_BITS)
    frame_top = spec_db[:, band].max(axis=1, keepdims=True) - params.frame_top_db
    prominent = (spec_db > background + params.min_prominence_db) | (spec_db >= frame_top)
    keep = (spec_db == local_max) & prominent & (spec_db > -60.0)  # -60 dB: silence, dither
    keep[:, : band.start] = False
    keep[:, band.stop :] = False
    frames, bins = np.nonzero(keep)
    return frames.astype(np.int64), bins.astype(np.int64)


def pair_peaks(
    frames: NDArray[np.int64], bins: NDArray[np.int64], params: LandmarkParams = DEFAULT_PARAMS
) -> tuple[NDArray[np.uint32], NDArray[np.uint32]]:
    """Hash each anchor with its first `fan_out` peaks in the target zone (Wang §2.2)."""
    count = len(frames)
    if count < 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    lookahead = min(count - 1, 8 * params.fan_out)
    ahead = np.arange(count)[:, None] + np.arange(1, lookahead + 1)[None, :]
    valid = ahead < count
    ahead = np.minimum(ahead, count - 1)
    dt = frames[ahead] - frames[:, None]
    df = bins[ahead] - bins[:, None]
    valid &= (dt >= 1) & (dt <= params.max_dt)
    valid &= (np.abs(df) <= params.max_df) & (np.abs(df) >= params.min_df)
    valid &= np.cumsum(valid, axis=1) <= params.fan_out
    anchor, slot = np.nonzero(valid)
    f1 = bins[anchor]
    step_f = df[anchor, slot] & ((1 << DF_BITS) - 1)
    step_t = dt[anchor, slot]
    hashes = (f1 << (DF_BITS + DT_BITS)) | (step_f << DT_BITS) | step_t
    return hashes.astype(np.uint32), frames[anchor].astype(np.uint32)


def fingerprint(
    samples: NDArray[np.float32], params: LandmarkParams = DEFAULT_PARAMS
) -> Fingerprint:
    """The landmark hashes of 8 kHz mono samples (pooled over `params.shifts` time shifts)."""
    if params.shifts < 1 or HOP % params.shifts:
        raise ValueError(f"shifts must divide the hop of {HOP} samples, not {params.shifts}")
    duration = len(samples) / SAMPLE_RATE
    if params.shifts == 1:
        frames, bins = find_peaks(spectrogram(samples), params)
        hashes, offsets = pair_peaks(frames, bins, params)
        return Fingerprint(hashes, offsets, duration)
    all_hashes, all_offsets = [], []
    for shift in range(0, HOP, HOP // params.shifts):
        frames, bins = find_peaks(spectrogram(samples[shift:]), params)
        hashes, offsets = pair_peaks(frames, bins, params)
        all_hashes.append(hashes.astype(np.int64))
        # Frame i of the shifted audio starts at i + shift/HOP of the unshifted frames.
        all_offsets.append(offsets.astype(np.int64) + (2 * shift >= HOP))
    return _pool(np.concatenate(all_hashes), np.concatenate(all_offsets), duration)


def _pool(hashes: NDArray[np.int64], offsets: NDArray[np.int64], duration: float) -> Fingerprint:
    """One landmark per hash and ±1 frame: the shifts mostly find the same landmarks a frame
    apart, and voting.vote already pools ±1 frame (counted once, a reference row gets one vote
    from each landmark, not one from each shift that found it)."""
    order = np.lexsort((offsets, hashes))
    hashes, offsets = hashes[order], offsets[order]
    first = np.ones(len(hashes), dtype=bool)
    first[1:] = (hashes[1:] != hashes[:-1]) | (offsets[1:] - offsets[:-1] > 1)
    starts = np.flatnonzero(first)
    last = np.maximum.reduceat(offsets, starts) if len(starts) else offsets
    hashes, offsets = hashes[starts], (offsets[starts] + last) // 2
    order = np.lexsort((hashes, offsets))
    return Fingerprint(hashes[order].astype(np.uint32), offsets[order].astype(np.uint32), duration)


def load_audio(
    path: str | Path | BinaryIO, max_seconds: float | None = None
) -> NDArray[np.float32]:
    """Decode the first audio stream of any file PyAV opens (a path or a binary file object)
    to 8 kHz mono float samples.

    Raises `ValueError` (PyAV's `InvalidDataError` is one) when the file is not media or has
    no audio stream.
    """
    import av

    chunks: list[NDArray[np.float32]] = []
    total = 0
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    name = Path(path).name if isinstance(path, str | Path) else "input"
    with av.open(str(path) if isinstance(path, str | Path) else path, "r") as container:
        if not container.streams.audio:
            raise ValueError(f"{name}: no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                chunks.append(chunk)
                total += len(chunk)
            if limit is not None and total >= limit:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return samples[:limit] if limit is not None else samples


class StreamingDownsampler:
    """48 kHz (or any multiple of 8 kHz) planar frames → 8 kHz mono, block by block.

    Equal to `scipy.signal.resample_poly(x, 1, factor)` on the whole signal (classifiers/
    filters.py `decimate`, the same filter without SciPy's import cost): every block is
    filtered with `pad` input samples of context on each side, and those outputs dropped.
    """

    def __init__(self, input_rate: int = 48_000, block: int = 48_000) -> None:
        if input_rate % SAMPLE_RATE:
            raise ValueError(f"input rate {input_rate} is not a multiple of {SAMPLE_RATE}")
        self.factor = input_rate // SAMPLE_RATE
        half = 10 * self.factor  # resample_poly's filter half-length
        self.pad = -(-half // self.factor) * self.factor
        self.block = -(-block // self.factor) * self.factor
        self._pending = np.zeros(self.pad, np.float32)  # leading zeros: resample_poly's padding
        self._out: list[NDArray[np.float32]] = []
        self.samples_in = 0

    def push(self, mono: NDArray[np.float32]) -> None:
        self._pending = np.concatenate([self._pending, mono.astype(np.float32, copy=False)])
        self.samples_in += len(mono)
        while len(self._pending) >= self.block + 2 * self.pad:
            self._emit(self._pending[: self.block + 2 * self.pad])
            self._pending = self._pending[self.block :]

    def finish(self) -> NDArray[np.float32]:
        outputs = -(-(len(self._pending) - self.pad) // self.factor)
        if outputs > 0:
            length = outputs * self.factor + 2 * self.pad
            tail = np.zeros(length, np.float32)
            tail[: len(self._pending)] = self._pending
            self._emit(tail)
        out = np.concatenate(self._out) if self._out else np.zeros(0, np.float32)
        return out[: -(-self.samples_in // self.factor)]

    def _emit(self, chunk: NDArray[np.float32]) -> None:
        filtered = decimate(chunk, self.factor)
        skip = self.pad // self.factor
        self._out.append(filtered[skip : len(filtered) - skip])  # decimate gives float32


@dataclass(frozen=True, slots=True)
class FingerprintSpec:
    """What crosses into the sandboxed transcode child to build a `FingerprintAnalyzer`."""

    # Uploads longer than this are fingerprinted on their first `max_seconds` only.
    max_seconds: float = 600.0


class FingerprintAnalyzer:
    """An `Analyzer` (classifiers/base.py) on the engine's audio taps: landmark hashes.

    `result()` is `Fingerprint.to_json()`, or `{"count": 0, ...}` for a video without audio;
    api/safety/copyright.py `evaluate` matches it against the catalog.
    """

    name = "fingerprint"

    def __init__(self, spec: FingerprintSpec | None = None) -> None:
        self.spec = spec or FingerprintSpec()
        self._downsampler: StreamingDownsampler | None = None
        self._limit = 0

    def on_video(self, frame: Any, time: float) -> None:
        return None

    def on_audio(self, frame: Any, time: float) -> None:
        if self._downsampler is None:
            self._downsampler = StreamingDownsampler(frame.sample_rate)
            self._limit = int(self.spec.max_seconds * frame.sample_rate)
        if self._downsampler.samples_in >= self._limit:
            return
        planes = frame.to_ndarray()  # planar float: channels × samples
        mono = planes.mean(axis=0) if planes.ndim == 2 else planes
        self._downsampler.push(mono.astype(np.float32, copy=False))

    def result(self) -> dict[str, Any]:
        samples = self._downsampler.finish() if self._downsampler else np.zeros(0, dtype=np.float32)
        return fingerprint(samples, QUERY_PARAMS).to_json()
