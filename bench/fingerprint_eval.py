"""The copyright fingerprint evaluation (issue 5, "Evidence": fingerprints on real music).

    .venv/bin/python bench/fingerprint_eval.py                # the full evaluation (minutes)
    .venv/bin/python bench/fingerprint_eval.py --clips 40 --non-catalog 40 --catalog-size 0

Catalog: every extremetuxracer track (Debian `extremetuxracer-data`, GPL-2+), fingerprinted
from the installed OGG files into a real SQLite catalog (classifiers/catalog.py). Queries:
clips of 5 s and 2 s from random tracks at random offsets, with pink noise at 10 dB SNR added
per channel, encoded to AAC-LC 64 kb/s stereo and decoded again (PyAV), then matched. A clip
counts as found when the top match is its track and the offset is within ±0.1 s.

False matches: 200 clips of audio outside the catalog (synthesized music, speech-like sounds,
tones and sweeps, coloured noise, and the soundtracks of tests/media), degraded the same
way; any match at all is false.

Speed: fingerprint extraction of the decoded tracks (× realtime), and the query time against
a 1,000-track catalog: the real tracks plus synthetic references (synthesized music, 60–240 s,
fingerprinted like any file) in a SQLite database, median over the 5 s clips.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from api.core.tables import audio_refs  # noqa: E402
from classifiers import catalog  # noqa: E402
from classifiers.fingerprint import (  # noqa: E402
    DEFAULT_PARAMS,
    FFT_SIZE,
    FORMAT_VERSION,
    HASH_BITS,
    HOP,
    QUERY_PARAMS,
    SAMPLE_RATE,
    fingerprint,
    load_audio,
)

MUSIC_DIR = Path("/usr/share/games/etr/music")
MEDIA_DIR = ROOT / "tests" / "media"
RESULTS = ROOT / "bench" / "fingerprint_results.json"
CLIP_RATE = 44_100
OFFSET_TOLERANCE_S = 0.1
SILENCE_RMS = 10 ** (-50 / 20)  # -50 dBFS
Audio = NDArray[np.float32]  # channels × samples at CLIP_RATE


def music_tracks(music_dir: Path = MUSIC_DIR) -> list[Path]:
    """The catalog's real tracks; missing ones fail loudly, never skip."""
    tracks = sorted(music_dir.glob("*.ogg"))
    if not tracks:
        raise FileNotFoundError(
            f"no OGG tracks in {music_dir}: apt-get install -y extremetuxracer-data"
        )
    return tracks


def decode_stereo(source: Path | io.BytesIO, rate: int = CLIP_RATE) -> Audio:
    """Any file's first audio stream as float stereo (2 × samples) at `rate`."""
    import av

    chunks: list[Any] = []
    with av.open(source if isinstance(source, io.BytesIO) else str(source), "r") as container:
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        for frame in container.decode(container.streams.audio[0]):
            chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    return np.concatenate(chunks, axis=1).astype(np.float32)


def pink_noise(samples: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """Unit-power noise whose power falls 3 dB an octave (1/f), by shaping white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.arange(len(spectrum), dtype=np.float64)
    freqs[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(freqs), n=samples)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def add_noise(clip: Audio, snr_db: float, rng: np.random.Generator) -> Audio:
    """Pink noise in each channel at `snr_db` below the clip's own power."""
    power = float(np.mean(clip.astype(np.float64) ** 2))
    scale = np.sqrt(max(power, 1e-10) / 10 ** (snr_db / 10))
    noise = np.stack([pink_noise(clip.shape[1], rng) for _ in range(clip.shape[0])])
    return (clip + scale * noise).astype(np.float32)


def aac_roundtrip(clip: Audio, bitrate: int = 64_000, rate: int = CLIP_RATE) -> io.BytesIO:
    """Encode stereo samples to AAC-LC in an MP4 (in memory), as an upload would carry them."""
    import av

    peak = float(np.max(np.abs(clip))) if clip.size else 0.0
    if peak > 1.0:
        clip = clip / peak
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate, layout="stereo")
        stream.bit_rate = bitrate
        step = 1024 * 16
        for start in range(0, clip.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(clip[:, start : start + step]), format="fltp", layout="stereo"
            )
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    buffer.seek(0)
    return buffer


def degrade(clip: Audio, rng: np.random.Generator, snr_db: float = 10.0) -> NDArray[np.float32]:
    """Noise, AAC 64 kb/s, decode: the query as the matcher sees it (8 kHz mono)."""
    return load_audio(aac_roundtrip(add_noise(clip, snr_db, rng)))


# --- audio that is not in the catalog --------------------------------------------------------


def _envelope(samples: int, attack: int, release: int) -> NDArray[np.float64]:
    env = np.ones(samples)
    attack, release = min(attack, samples), min(release, samples)
    env[:attack] = np.linspace(0, 1, attack)
    env[samples - release :] *= np.linspace(1, 0, release)
    return env


def synth_music(seconds: float, rng: np.random.Generator, rate: int = CLIP_RATE) -> Audio:
    """Music-like: a melody and chords of harmonic notes on a scale, with drum hits."""
    total = int(seconds * rate)
    out = np.zeros(total)
    beat = int(rate * 60 / rng.uniform(70, 160))
    root = rng.uniform(110, 330)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    timbre = rng.uniform(0.2, 1.0, size=8) ** np.arange(1, 9)
    t = np.arange(beat * 4) / rate
    for start in range(0, total, beat):
        length = min(beat * int(rng.integers(1, 3)), total - start)
        voices = [rng.choice(scale)] + ([] if rng.random() < 0.5 else [0, 4, 7])
        note = np.zeros(length)
        for semitone in voices:
            f0 = root * 2 ** (semitone / 12) * rng.choice([0.5, 1, 2])
            for k, amp in enumerate(timbre, start=1):
                if f0 * k < rate / 2:
                    note += amp * np.sin(2 * np.pi * f0 * k * t[:length] + rng.uniform(0, 6.3))
        out[start : start + length] += note * _envelope(length, rate // 100, length // 2)
        if rng.random() < 0.6:  # kick or snare
            hit = min(rate // 8, total - start)
            burst = (
                rng.standard_normal(hit) if rng.random() < 0.5 else np.sin(2 * np.pi * 60 * t[:hit])
            )
            out[start : start + hit] += 2 * burst * np.exp(-np.arange(hit) / (rate / 40))
    return _stereo(out, rng)


def speech_like(seconds: float, rng: np.random.Generator, rate: int = CLIP_RATE) -> Audio:
    """Speech-like: a jittered glottal pulse train through moving formants, 4 syllables/s."""
    from scipy import signal

    total = int(seconds * rate)
    pitch = rng.uniform(90, 240) * (
        1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * np.arange(total) / rate)
    )
    phase = np.cumsum(pitch / rate)
    source = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    source += 0.05 * rng.standard_normal(total)
    out = np.zeros(total)
    syllable = int(rate / rng.uniform(3, 6))
    for start in range(0, total, syllable):
        part = source[start : start + syllable]
        voiced = np.zeros_like(part)
        for formant in (rng.uniform(300, 900), rng.uniform(900, 2500), rng.uniform(2500, 3500)):
            b, a = signal.iirpeak(formant, 8, fs=rate)
            voiced += signal.lfilter(b, a, part)
        if rng.random() < 0.3:  # a fricative
            voiced = signal.lfilter(
                *signal.butter(2, 3000, "high", fs=rate), rng.standard_normal(len(part))
            )
        out[start : start + len(part)] = voiced * np.hanning(len(part))
    return _stereo(out, rng)


def tones(seconds: float, rng: np.random.Generator, rate: int = CLIP_RATE) -> Audio:
    """A pure tone, a dual tone, a sweep or a square wave."""
    t = np.arange(int(seconds * rate)) / rate
    kind = rng.integers(0, 4)
    f = rng.uniform(100, 3500)
    if kind == 0:
        out = np.sin(2 * np.pi * f * t)
    elif kind == 1:
        out = np.sin(2 * np.pi * f * t) + np.sin(2 * np.pi * rng.uniform(600, 1700) * t)
    elif kind == 2:
        f2 = rng.uniform(100, 3500)
        out = np.sin(2 * np.pi * (f * t + (f2 - f) * t**2 / (2 * seconds)))
    else:
        out = np.sign(np.sin(2 * np.pi * rng.uniform(80, 800) * t))
    return _stereo(out, rng)


def coloured_noise(seconds: float, rng: np.random.Generator, rate: int = CLIP_RATE) -> Audio:
    """White, pink or brown noise."""
    samples = int(seconds * rate)
    kind = rng.integers(0, 3)
    if kind == 0:
        out = rng.standard_normal(samples)
    elif kind == 1:
        out = pink_noise(samples, rng)
    else:
        out = np.cumsum(rng.standard_normal(samples))
        out -= np.linspace(out[0], out[-1], samples)
    return _stereo(out, rng)


def _stereo(mono: NDArray[np.float64], rng: np.random.Generator) -> Audio:
    mono = mono / (np.max(np.abs(mono)) + 1e-12) * rng.uniform(0.2, 0.8)
    return np.stack([mono, mono]).astype(np.float32)


def media_segments(seconds: float, rng: np.random.Generator, count: int) -> list[Audio]:
    """Pieces of the soundtracks in tests/media (camera audio, film, DTS music...)."""
    sources = []
    for path in sorted(MEDIA_DIR.iterdir()):
        try:
            sources.append(decode_stereo(path))
        except (ValueError, IndexError, OSError):
            continue  # no audio stream (or not media: the README)
    if not sources:
        raise FileNotFoundError(f"no audio in {MEDIA_DIR}")
    pieces = []
    length = int(seconds * CLIP_RATE)
    for i in range(count):
        audio = sources[i % len(sources)]
        start = int(rng.integers(0, max(1, audio.shape[1] - length)))
        pieces.append(audio[:, start : start + length])
    return pieces


GENERATORS: dict[str, Callable[[float, np.random.Generator], Audio]] = {
    "synth_music": synth_music,
    "speech_like": speech_like,
    "tones": tones,
    "noise": coloured_noise,
}


def non_catalog_clips(
    count: int, seconds: float, rng: np.random.Generator
) -> Iterator[tuple[str, Audio]]:
    """`count` clips: a quarter shared-media soundtracks, the rest the generators in turn."""
    media = count // 4
    for piece in media_segments(seconds, rng, media):
        yield "shared_media", piece
    names = list(GENERATORS)
    for i in range(count - media):
        name = names[i % len(names)]
        yield name, GENERATORS[name](seconds, rng)


# --- the evaluation --------------------------------------------------------------------------


@dataclass
class Reference:
    name: str
    audio: Audio  # stereo at CLIP_RATE, what queries are cut from
    mono: NDArray[np.float32]  # 8 kHz mono, to tell a repeat of the same passage

    @property
    def seconds(self) -> float:
        return self.audio.shape[1] / CLIP_RATE


def build_catalog(conn: Any, tracks: list[Path]) -> tuple[list[Reference], dict[str, float]]:
    """Fingerprint every track into the catalog; returns the references and extraction speed."""
    references = []
    audio_seconds = extract_seconds = 0.0
    for path in tracks:
        samples = load_audio(path)
        started = time.perf_counter()
        print_ = fingerprint(samples)
        extract_seconds += time.perf_counter() - started
        audio_seconds += len(samples) / SAMPLE_RATE
        catalog.add_reference(conn, path.name, "etr", print_, "block")
        references.append(Reference(path.name, decode_stereo(path), samples))
    speed = {
        "audio_seconds": round(audio_seconds, 1),
        "extract_seconds": round(extract_seconds, 3),
        "x_realtime": round(audio_seconds / extract_seconds, 1),
    }
    return references, speed


def draw_clip(
    references: list[Reference], seconds: float, rng: np.random.Generator
) -> tuple[Reference, int, Audio]:
    """A random track and offset; a clip of digital silence (a track's tail) is drawn again."""
    length = int(seconds * CLIP_RATE)
    while True:
        ref = references[int(rng.integers(len(references)))]
        start = int(rng.integers(0, max(1, ref.audio.shape[1] - length)))
        clip = ref.audio[:, start : start + length]
        if np.sqrt(np.mean(clip.astype(np.float64) ** 2)) >= SILENCE_RMS:
            return ref, start, clip


def same_passage(ref: Reference, truth_s: float, found_s: float, seconds: float) -> bool:
    """Whether the track plays the same audio at `found_s` as at `truth_s` (a looped section):
    the clean waveforms correlate ≥ 0.9 at some lag within ±0.1 s."""
    from scipy import signal

    rate = SAMPLE_RATE
    x = ref.mono[int(truth_s * rate) : int((truth_s + seconds) * rate)].astype(np.float64)
    lo = max(0, int((found_s - OFFSET_TOLERANCE_S) * rate))
    y = ref.mono[lo : int((found_s + seconds + OFFSET_TOLERANCE_S) * rate)].astype(np.float64)
    if len(y) < len(x) or not x.any():
        return False
    dot = signal.correlate(y, x, mode="valid", method="fft")
    energy = np.convolve(y**2, np.ones(len(x)), mode="valid")
    best = np.max(dot / np.sqrt(np.maximum(energy * np.dot(x, x), 1e-20)))
    return bool(best >= 0.9)


def query_clips(
    conn: Any,
    references: list[Reference],
    seconds: float,
    count: int,
    rng: np.random.Generator,
    min_score: int = catalog.DEFAULT_MIN_SCORE,
) -> dict[str, Any]:
    """Top-1 accuracy with the right offset for `count` degraded clips of `seconds`.

    `found`: right track, offset within ±0.1 s of where the clip was cut. `repeat`: right
    track at another offset where the track plays the same passage again (looped game music):
    no fingerprint can tell those apart, so they are counted apart, not as found.
    """
    found, repeats, scores, misses = 0, 0, [], []
    for _ in range(count):
        ref, start, clip = draw_clip(references, seconds, rng)
        query = fingerprint(degrade(clip, rng), QUERY_PARAMS)
        best = catalog.vote_for(conn, query)
        result = catalog.match(conn, query, min_score=min_score)
        truth = start / CLIP_RATE
        scores.append(best.score if best else 0)
        if result is not None and result.name == ref.name:
            if abs(result.offset_s - truth) <= OFFSET_TOLERANCE_S:
                found += 1
                continue
            if same_passage(ref, truth, result.offset_s, seconds):
                repeats += 1
                continue
        misses.append(
            {"ref": ref.name, "offset_s": round(truth, 3), "got": result and result.to_json()}
        )
    return {
        "clips": count,
        "seconds": seconds,
        "found": found,
        "accuracy": round(found / count, 4),
        "found_at_a_repeat": repeats,
        "accuracy_with_repeats": round((found + repeats) / count, 4),
        "median_score": statistics.median(scores),
        "scores_below_threshold": sum(score < min_score for score in scores),
        "misses": misses[:25],
    }


def false_matches(
    conn: Any,
    count: int,
    seconds: float,
    rng: np.random.Generator,
    min_score: int = catalog.DEFAULT_MIN_SCORE,
) -> dict[str, Any]:
    """Matches (all false) among `count` degraded clips of audio outside the catalog."""
    matches: list[dict[str, Any]] = []
    top: dict[str, int] = {}
    for kind, clip in non_catalog_clips(count, seconds, rng):
        query = fingerprint(degrade(clip, rng), QUERY_PARAMS)
        best = catalog.vote_for(conn, query)
        top[kind] = max(top.get(kind, 0), best.score if best else 0)
        result = catalog.match(conn, query, min_score=min_score)
        if result is not None:
            matches.append({"kind": kind, **result.to_json()})
    return {
        "clips": count,
        "seconds": seconds,
        "false_matches": len(matches),
        "highest_score_by_kind": top,
        "matches": matches,
    }


def _synthetic_reference(seed_seconds: tuple[int, float]) -> Any:
    seed, seconds = seed_seconds
    audio = synth_music(seconds, np.random.default_rng(seed), rate=SAMPLE_RATE)[0]
    return fingerprint(audio)


def synthetic_references(conn: Any, count: int, rng: np.random.Generator) -> float:
    """Add `count` synthesized 60–240 s references (built on two processes); their seconds."""
    from multiprocessing import get_context

    jobs = [(int(rng.integers(1 << 31)), float(rng.uniform(60, 240))) for _ in range(count)]
    with get_context("fork").Pool(2) as pool:
        for i, print_ in enumerate(pool.imap(_synthetic_reference, jobs, chunksize=4)):
            catalog.add_reference(conn, f"synthetic-{i:04d}", "bench", print_, "allow")
    return sum(seconds for _, seconds in jobs)


def query_speed(
    conn: Any, references: list[Reference], count: int, rng: np.random.Generator, warmup: int = 10
) -> dict[str, float]:
    """Median and 95th-percentile time of one 5 s query (lookup + votes + threshold): wall
    time, and the CPU time of this process (SQLite runs in it), which other load on the
    machine does not inflate. After `warmup` untimed queries: the caller has read the
    catalog's file into the OS cache, as a serving catalog has it."""
    walls, cpus = [], []
    for i in range(warmup + count):
        _, _, clip = draw_clip(references, 5.0, rng)
        query = fingerprint(degrade(clip, rng), QUERY_PARAMS)
        started, cpu = time.perf_counter(), time.process_time()
        catalog.match(conn, query)
        if i >= warmup:
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
    walls.sort()
    cpus.sort()
    load = os.getloadavg()[0]
    return {
        "queries": count,
        "warmup_queries": warmup,
        "median_ms": round(1000 * statistics.median(walls), 1),
        "p95_ms": round(1000 * walls[int(0.95 * (len(walls) - 1))], 1),
        "cpu_median_ms": round(1000 * statistics.median(cpus), 1),
        "cpu_p95_ms": round(1000 * cpus[int(0.95 * (len(cpus) - 1))], 1),
        "load_average_1min": round(load, 1),
    }


def open_catalog(folder: Path) -> Any:
    """A fresh SQLite catalog through the service's own engine and schema."""
    from api.core.db import create_schema, sync_engine
    from api.core.settings import Settings

    settings = Settings(data_dir=folder).resolved()
    engine = sync_engine(settings)
    create_schema(engine)
    return engine


def tap_speed(tracks: list[Path]) -> dict[str, float]:
    """The analyzer as the engine runs it: 48 kHz stereo planar frames of 1024 samples in
    (`on_audio`), downmix, 48 → 8 kHz, landmarks out (`result`), in × realtime."""
    import av

    from classifiers.fingerprint import FingerprintAnalyzer

    seconds = elapsed = 0.0
    for path in tracks:
        audio = decode_stereo(path, rate=48_000)
        frames = []
        for start in range(0, audio.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, start : start + 1024]), format="fltp", layout="stereo"
            )
            frame.sample_rate = 48_000
            frames.append(frame)
        analyzer = FingerprintAnalyzer()
        started = time.perf_counter()
        for i, frame in enumerate(frames):
            analyzer.on_audio(frame, i * 1024 / 48_000)
        analyzer.result()
        elapsed += time.perf_counter() - started
        seconds += audio.shape[1] / 48_000
    return {"audio_seconds": round(seconds, 1), "x_realtime": round(seconds / elapsed, 1)}


def method() -> dict[str, Any]:
    """The fingerprint's parameters, recorded with the results (and with a kept catalog)."""
    return {
        "format_version": FORMAT_VERSION,
        "sample_rate": SAMPLE_RATE,
        "fft_size": FFT_SIZE,
        "hop": HOP,
        "hash_bits": HASH_BITS,
        "min_score": catalog.DEFAULT_MIN_SCORE,
        **dataclasses.asdict(DEFAULT_PARAMS),
        "query_fan_out": QUERY_PARAMS.fan_out,
        "query_shifts": QUERY_PARAMS.shifts,
    }


def large_catalog(
    folder: Path, size: int, tracks: list[Path], rng: np.random.Generator
) -> tuple[Any, float]:
    """The speed test's catalog: the real tracks plus synthetic references up to `size`, built
    in `folder` (reused when a previous run left one made with the same method)."""
    stamp = folder / "method.json"
    wanted = json.dumps({**method(), "size": size}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == wanted:
        engine = open_catalog(folder)
        with engine.connect() as conn:
            seconds = conn.execute(select(func.sum(audio_refs.c.duration_s))).scalar_one()
        return engine, float(seconds)
    for leftover in folder.glob("reelforge.db*"):
        leftover.unlink()
    stamp.unlink(missing_ok=True)
    engine = open_catalog(folder)
    with engine.begin() as conn:
        for path in tracks:
            catalog.add_reference(conn, path.name, "etr", fingerprint(load_audio(path)), "block")
        synthetic_references(conn, size - len(tracks), rng)
    stamp.write_text(wanted)
    return large_catalog(folder, size, tracks, rng)


def large_accuracy(
    conn: Any, references: list[Reference], count: int, rng: np.random.Generator
) -> dict[str, Any]:
    """The same accuracy and false-match queries against the 1,000-reference catalog, where
    chance votes are a hundred times more numerous (and the synthetic references are made by
    the same synthesizer as the non-catalog music clips)."""
    outcome: dict[str, Any] = {}
    for seconds in (5.0, 2.0):
        clips = query_clips(conn, references, seconds, count, rng)
        outcome[f"clips_{seconds:g}s"] = {k: v for k, v in clips.items() if k != "misses"}
        print(f"large catalog, {seconds:g} s clips: {clips['found']}/{count} found", flush=True)
    foreign = false_matches(conn, count, 5.0, rng)
    outcome["non_catalog"] = foreign
    print(f"large catalog, non-catalog: {foreign['false_matches']} false of {count}", flush=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=500, help="queries per clip length")
    parser.add_argument("--non-catalog", type=int, default=200)
    parser.add_argument("--catalog-size", type=int, default=1000, help="0 skips the speed test")
    parser.add_argument("--speed-queries", type=int, default=50)
    parser.add_argument(
        "--large-clips",
        type=int,
        default=200,
        help="accuracy and false matches against the large catalog too: queries of each kind",
    )
    parser.add_argument(
        "--speed-dir", type=Path, default=None, help="keep the large catalog here for next time"
    )
    parser.add_argument("--skip-accuracy", action="store_true", help="the speed test alone")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    results: dict[str, Any] = {
        "seed": args.seed,
        "method": method(),
        "queries": "pink noise at 10 dB SNR per channel, then AAC-LC 64 kb/s stereo (PyAV)",
    }
    tracks = music_tracks()
    with tempfile.TemporaryDirectory(prefix="fp-eval-") as tmp:
        engine = open_catalog(Path(tmp))
        with engine.begin() as conn:
            references, speed = build_catalog(conn, tracks)
        results["catalog"] = {
            "tracks": len(references),
            "seconds": round(sum(r.seconds for r in references), 1),
        }
        results["extraction"] = speed
        results["extraction_on_engine_taps"] = tap_speed(tracks)
        print(f"catalog: {len(references)} tracks; extraction {speed['x_realtime']}x realtime")
        if not args.skip_accuracy:
            with engine.connect() as conn:
                for seconds in (5.0, 2.0):
                    outcome = query_clips(conn, references, seconds, args.clips, rng)
                    results[f"clips_{seconds:g}s"] = outcome
                    print(
                        f"{seconds:g} s clips: {outcome['found']}/{outcome['clips']} found, "
                        f"{outcome['found_at_a_repeat']} more at a repeat",
                        flush=True,
                    )
                outcome = false_matches(conn, args.non_catalog, 5.0, rng)
                results["non_catalog"] = outcome
                print(f"non-catalog: {outcome['false_matches']} false of {outcome['clips']}")
        engine.dispose()
        if args.catalog_size:
            folder = args.speed_dir or Path(tmp) / "large"
            folder.mkdir(parents=True, exist_ok=True)
            large, seconds = large_catalog(folder, args.catalog_size, tracks, rng)
            # A serving catalog's pages are in memory; this VM's proactive reclaim (DAMON)
            # evicts an idle file's, and a cold query waits on the disk: read it once.
            for path in folder.glob("reelforge.db*"):
                with path.open("rb") as db_file:
                    while db_file.read(1 << 24):
                        pass
            with large.connect() as conn:
                timing: dict[str, Any] = query_speed(conn, references, args.speed_queries, rng)
                rows = conn.execute(catalog.count_postings()).scalar_one()
                cap = catalog.postings_cap(conn)
                if args.large_clips:
                    results["large_catalog"] = large_accuracy(
                        conn, references, args.large_clips, rng
                    )
            large.dispose()
            timing.update(
                {
                    "references": args.catalog_size,
                    "catalog_hours": round(seconds / 3600, 1),
                    "postings": int(rows),
                    "postings_cap": cap,
                }
            )
            results["query_1000"] = timing
            print(f"query against {args.catalog_size} references: {timing}")
    if args.skip_accuracy and args.results.is_file():
        # A speed-only run keeps the accuracy figures of the last full run.
        results = {**json.loads(args.results.read_text()), **results}
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
