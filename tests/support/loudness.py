"""Loudness test helpers: sources at a chosen integrated loudness, and an independent meter.

The meter is Debian's ffmpeg CLI (`ebur128=peak=true`: ITU-R BS.1770-4 / EBU R128 integrated
loudness, true peak 4× oversampled), not the engine's PyAV graph. Shared by
tests/test_loudness.py and bench/loudness_bench.py.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from tests.support.clips import ffmpeg
from tests.support.ffprobe import joined_rendition

SECONDS = 6
MUSIC = Path("/usr/share/games/etr/music")


@dataclass(frozen=True)
class Measured:
    integrated: float  # LUFS
    true_peak: float  # dBTP, -inf for digital silence


def ebur128(path: Path, stereo: bool = False) -> Measured:
    """Debian ffmpeg's own summary of the first audio stream of `path` (`stereo`: of its
    downmix to stereo, which is what the output carries)."""
    downmix = "aformat=channel_layouts=stereo," if stereo else ""
    proc = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostats", "-i", str(path), "-map", "0:a:0",
         "-af", f"{downmix}ebur128=peak=true", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = proc.stderr[proc.stderr.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert integrated and peak, summary
    return Measured(float(integrated.group(1)), float(peak.group(1)))


def output_audio(outdir: Path) -> Measured:
    with joined_rendition(outdir / "audio") as joined:
        return ebur128(joined)


def decoded_audio(outdir: Path) -> np.ndarray:
    """The output audio track as float samples, channel 0 (48 kHz)."""
    with joined_rendition(outdir / "audio") as joined, av.open(str(joined)) as container:
        chunks = [f.to_ndarray()[0] for f in container.decode(audio=0)]
    return np.concatenate(chunks)


def _render(graph: str, dest: Path) -> None:
    ffmpeg("-f", "lavfi", "-i", graph, "-t", str(SECONDS), "-ar", "48000", "-ac", "2",
           "-c:a", "pcm_f32le", str(dest))  # fmt: skip


def _with_video(audio: Path, dest: Path) -> Path:
    """A small phone-shaped upload: 360x640 H.264 + AAC 256k of `audio` (float WAV, so peaks
    above full scale survive as they do in loud real uploads)."""
    ffmpeg("-f", "lavfi", "-i", f"color=c=gray:size=360x640:rate=30:duration={SECONDS}",
           "-i", str(audio), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "256k", "-shortest", str(dest))  # fmt: skip
    return dest


def source_at(folder: Path, name: str, graph: str, lufs: float | None) -> Path:
    """The signal of lavfi `graph` brought to `lufs` integrated (None: as it is), muxed."""
    dest = folder / f"{name}.mp4"
    if dest.exists():
        return dest
    raw = folder / f"{name}.raw.wav"
    _render(graph, raw)
    if lufs is not None:
        # Gain, and peaks held under -0.5 dBFS as a mastering limiter would (the source's AAC
        # encoder would clip them anyway); later rounds win back what the limiter took.
        for round_ in range(8):
            gain = lufs - ebur128(raw).integrated
            if abs(gain) < 0.1:
                break
            gain *= 1 if round_ == 0 else 2  # the limiter takes about half of what is added
            leveled = folder / f"{name}.lvl.wav"
            chain = f"volume={gain:.3f}dB,alimiter=limit=0.95:level=0:latency=1"
            ffmpeg("-i", str(raw), "-af", chain, "-c:a", "pcm_f32le", str(leveled))
            leveled.replace(raw)
    return _with_video(raw, dest)


PINK = "anoisesrc=color=pink:sample_rate=48000:amplitude=0.5:seed=3"
# Syllables (180 ms on, 120 ms off) in phrases (2 s on, 0.5 s off): speech-like, LRA ~ 0.
SPEECH = (
    PINK + ",volume=eval=frame:volume='(0.05+0.95*lt(mod(t\\,0.3)\\,0.18))*lt(mod(t\\,2.5)\\,2)'"
)
# Speech plus a full-scale click (2 ms) every 1.5 s: peaks ~30 dB over the loudness.
CREST = (
    SPEECH + ",aeval=exprs='val(0)+if(lt(mod(t\\,1.5)\\,0.002)\\,0.98*sin(2*PI*3000*t)\\,0)':c=same"
)

SOURCES: dict[str, tuple[str, float | None]] = {
    "pink_-40": (PINK, -40.0),
    "pink_-30": (PINK, -30.0),
    "pink_-23": (PINK, -23.0),
    "pink_-14": (PINK, -14.0),
    "speech_-40": (SPEECH, -40.0),
    "speech_-23": (SPEECH, -23.0),
    "music_-5": (f"amovie={MUSIC / 'race1-jt.ogg'}", -5.0),
    "music_-35": (f"amovie={MUSIC / 'freezingpoint.ogg'}", -35.0),
    "crest_-30": (CREST, -30.0),
}
