"""Clips whose every frame time is chosen, written with PyAV, and how to read them back.

Each frame carries its index as a 4x3 grid of black/white blocks (`CODE_BITS` bits), so the
frame shown at any output time can be read after scaling and compression; the audio is
silence with one beep (`BEEP_SECONDS`) that starts exactly when a chosen frame is shown, so
audio/video sync is measured on the output as the beep onset against that frame's first
appearance. The video is x264 with B-frames (`veryfast`), as phones and screen recorders
write it: its decode timestamps run ahead of the pts, which is what misled the old probe.

`SHAPES` are the variable-rate shapes of issue 12: a held first frame, a held middle frame,
iPhone slow motion at 120 and 240 fps, and a screen recorder.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

WIDTH, HEIGHT = 320, 240
GRID_COLUMNS, GRID_ROWS = 4, 3
CODE_BITS = GRID_COLUMNS * GRID_ROWS
SAMPLE_RATE = 48_000
BEEP_SECONDS = 0.1
BEEP_HZ = 1000.0


@dataclass(frozen=True, slots=True)
class Shape:
    """Frame times (s) and when the last frame stops being shown; audio as long as
    `audio_seconds` (the video's end when None) with a beep when frame `beep_frame` shows."""

    name: str
    times: tuple[float, ...]
    end: float
    beep_frame: int
    peak_rate: int  # frames per second where the frames come fastest
    time_base: Fraction = Fraction(1, 90_000)
    audio_seconds: float | None = None
    b_frames: bool = True  # False: a realtime encoder's stream (the last frame's hold is kept)
    note: str = field(default="", compare=False)

    @property
    def beep_time(self) -> float:
        return self.times[self.beep_frame]

    @property
    def frame_count(self) -> int:
        return len(self.times)

    def frame_at(self, t: float) -> int:
        """Index of the frame shown at time `t`."""
        shown = 0
        for index, start in enumerate(self.times):
            if start <= t + 1e-9:
                shown = index
        return shown


def _run(start: float, count: int, rate: float) -> list[float]:
    return [start + k / rate for k in range(count)]


def held_first() -> Shape:
    """The first frame held 10 s, then 3 s of 30 fps motion (issue 12's example)."""
    times = [0.0, *_run(10.0, 90, 30)]
    return Shape("held_first", tuple(times), 13.0, 31, 30, note="first frame 10 s")


def held_middle() -> Shape:
    """2 s at 30 fps, a frame held 3 s, 2 s at 30 fps."""
    times = [*_run(0.0, 60, 30), *_run(5.0, 60, 30)]
    return Shape("held_middle", tuple(times), 7.0, 75, 30, note="frame 59 held 3 s")


def slowmo(rate: int) -> Shape:
    """iPhone slow motion: `rate` fps for 2 s on QuickTime's 1/600 clock (240 fps is 2.5
    ticks a frame, so intervals alternate 2 and 3 ticks)."""
    tb = Fraction(1, 600)
    times = [float(round(Fraction(k, rate) / tb) * tb) for k in range(2 * rate)]
    return Shape(f"slowmo_{rate}", tuple(times), 2.0, rate, rate, time_base=tb,
                 note=f"{rate} fps, 1/600 clock")  # fmt: skip


def screen_recorder() -> Shape:
    """A 60 Hz capture clock that emits a frame only when the screen changes: a still start
    (1.5 s), a 60 fps scroll (1 s), a pause (2 s), typing at irregular 2-3 vsyncs (1 s), and a
    last frame held 1 s."""
    tb = Fraction(1, 600)
    vsyncs = [0, *range(90, 150), 270, *range(272, 332, 2), *range(333, 360, 3)]
    times = tuple(float(v * Fraction(10) * tb) for v in vsyncs)
    return Shape("screen_recorder", times, times[-1] + 1.0, 61, 60, time_base=tb,
                 b_frames=False, note="60 Hz clock, frames on change")  # fmt: skip


def plain(rate: int = 30, seconds: float = 4.0) -> Shape:
    """Constant `rate` fps for `seconds`, with audio and the beep on the frame at 1 s: the
    ordinary shape, for the A/V start in players (issue 13)."""
    frames = round(seconds * rate)
    return Shape(f"plain_{rate}", tuple(_run(0.0, frames, rate)), seconds, rate, rate,
                 note=f"{rate} fps")  # fmt: skip


def long_audio() -> Shape:
    """2 s of 30 fps video over 20 s of audio."""
    return Shape("long_audio", tuple(_run(0.0, 60, 30)), 2.0, 30, 30, audio_seconds=20.0)


def steady(rate: int, frames: int, beep_frame: int) -> Shape:
    """A constant `rate` with B-frames, `frames` long: with 2 s segments a length that is not a
    whole number of GOPs leaves a short last one, where B-frame reordering stops (issue 13)."""
    return Shape(f"steady_{rate}", tuple(_run(0.0, frames, rate)), frames / rate, beep_frame,
                 rate, note=f"{rate} fps, {frames} frames")  # fmt: skip


# Issue 13's sync shapes: 30 fps, 3 GOPs + a 3-frame tail; 24 fps, 2 GOPs + a 2-frame tail.
SYNC_SHAPES: tuple[Shape, ...] = (steady(30, 183, 75), steady(24, 98, 50))

SHAPES: tuple[Shape, ...] = (
    held_first(),
    held_middle(),
    slowmo(120),
    slowmo(240),
    screen_recorder(),
)


def code_picture(index: int) -> np.ndarray:
    """A gray yuv420p picture carrying `index` in its grid of blocks (white = 1)."""
    luma = np.full((HEIGHT, WIDTH), 128, dtype=np.uint8)
    bw, bh = WIDTH // GRID_COLUMNS, HEIGHT // GRID_ROWS
    for bit in range(CODE_BITS):
        row, col = divmod(bit, GRID_COLUMNS)
        value = 235 if index >> bit & 1 else 16
        luma[row * bh + 8 : (row + 1) * bh - 8, col * bw + 8 : (col + 1) * bw - 8] = value
    chroma = np.full((HEIGHT // 2, WIDTH), 128, dtype=np.uint8)
    return np.concatenate([luma, chroma])


def read_code(frame: Any) -> int:
    """The index a decoded (possibly scaled) frame carries."""
    luma = frame.to_ndarray(format="gray").astype(np.float32)
    height, width = luma.shape
    bw, bh = width / GRID_COLUMNS, height / GRID_ROWS
    code = 0
    for bit in range(CODE_BITS):
        row, col = divmod(bit, GRID_COLUMNS)
        y0, x0 = int(row * bh + bh / 4), int(col * bw + bw / 4)
        block = luma[y0 : int(y0 + bh / 2), x0 : int(x0 + bw / 2)]
        code |= (1 if block.mean() > 128 else 0) << bit
    return code


def beep_track(seconds: float, beep_at: float) -> np.ndarray:
    """Mono float samples: silence with a `BEEP_SECONDS` sine burst from `beep_at`."""
    samples = np.zeros(round(seconds * SAMPLE_RATE), dtype=np.float32)
    first = round(beep_at * SAMPLE_RATE)
    n = min(round(BEEP_SECONDS * SAMPLE_RATE), len(samples) - first)
    t = np.arange(n) / SAMPLE_RATE
    samples[first : first + n] = 0.5 * np.sin(2 * np.pi * BEEP_HZ * t)
    return samples


def write_clip(shape: Shape, dest: Path) -> Path:
    """An MP4 of `shape`: x264 at the shape's frame times on its clock (the track timescale)
    + AAC with the beep. Each packet carries its frame's duration, so the last sample's
    duration in the `stts` is the last frame's hold when that frame is also the last decoded."""
    tb = shape.time_base
    timescale = {"video_track_timescale": str(tb.denominator)}
    with av.open(str(dest), mode="w", format="mp4", options=timescale) as out:
        video: Any = out.add_stream("libx264", rate=shape.peak_rate)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.time_base = tb
        video.codec_context.time_base = tb
        video.options = {"preset": "veryfast", "crf": "30", "bf": "3" if shape.b_frames else "0"}
        audio: Any = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        audio.codec_context.time_base = Fraction(1, SAMPLE_RATE)
        ends = [*shape.times[1:], shape.end]
        pts = [round(Fraction(t) / tb) for t in shape.times]
        durations = {p: round(Fraction(e) / tb) - p for p, e in zip(pts, ends, strict=True)}

        def mux(packets: list[Any]) -> None:
            for packet in packets:
                packet.duration = durations.get(packet.pts, packet.duration)
                out.mux(packet)

        for index, at in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(code_picture(index), format="yuv420p")
            frame.pts, frame.time_base = at, tb
            mux(video.encode(frame))
        mux(video.encode(None))
        samples = beep_track(shape.audio_seconds or shape.end, shape.beep_time)
        for at in range(0, len(samples), 1024):
            chunk = samples[at : at + 1024]
            aframe = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
            aframe.sample_rate, aframe.pts = SAMPLE_RATE, at
            aframe.time_base = Fraction(1, SAMPLE_RATE)
            out.mux(audio.encode(aframe))
        out.mux(audio.encode(None))
    return dest


def build(shape: Shape, folder: Path) -> Path:
    """`folder/<name>.mp4`, written once."""
    path = folder / f"{shape.name}.mp4"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        part = folder / f".{shape.name}.part.mp4"
        write_clip(shape, part)
        part.replace(path)
    return path


@dataclass(frozen=True, slots=True)
class Played:
    """An output rendition read back: each video frame's time and code, the beep onset."""

    frame_times: tuple[float, ...]
    codes: tuple[int, ...]
    video_end: float
    audio_end: float | None
    beep_onset: float | None


def decoded_video(path: Path) -> Iterator[tuple[float, float, int]]:
    """(time, duration, code) of every frame of a video file, in presentation order."""
    with av.open(str(path)) as container:
        stream: Any = container.streams.video[0]
        tb = stream.time_base
        for frame in container.decode(stream):
            yield float(frame.pts * tb), float((frame.duration or 0) * tb), read_code(frame)


def beep_onset(path: Path, threshold: float = 0.1) -> tuple[float | None, float]:
    """(first time a 5 ms window's peak passes `threshold`, end of the audio) of a file."""
    with av.open(str(path)) as container:
        stream: Any = container.streams.audio[0]
        chunks, first = [], None
        for frame in container.decode(stream):
            if first is None:
                first = float(frame.pts * stream.time_base) if frame.pts is not None else 0.0
            chunks.append(frame.to_ndarray()[0])
            rate = frame.sample_rate
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    start = first or 0.0
    window = round(0.005 * rate) if chunks else 1
    loud = np.flatnonzero(np.abs(samples) > threshold)
    onset = start + (loud[0] // window) * window / rate if len(loud) else None
    return onset, start + len(samples) / rate if chunks else 0.0


def play(video_file: Path, audio_file: Path | None) -> Played:
    """Read back one video rendition and the audio rendition (joined CMAF files).

    Every track of a presentation starts at the same instant, 0 (packager/timeline.py). A
    player starts at the first frame, so times are read from it, audio and video alike: a
    presentation that did not start at 0 would still be measured fairly."""
    frames = list(decoded_video(video_file))
    shift = frames[0][0] if frames else 0.0
    times = tuple(t - shift for t, _, _ in frames)
    video_end = times[-1] + frames[-1][1] if frames else 0.0
    onset, audio_end = beep_onset(audio_file) if audio_file is not None else (None, None)
    if onset is not None:
        onset -= shift
    if audio_end is not None:
        audio_end -= shift
    return Played(times, tuple(c for _, _, c in frames), video_end, audio_end, onset)


def av_offset(shape: Shape, played: Played) -> float | None:
    """How late the beep plays against the picture it belongs to (s; negative: early).

    The picture is the first output frame showing the beep frame or a later one (a
    decimated output may skip the beep frame itself); it is due at that source frame's time."""
    shown = next(
        ((t, c) for t, c in zip(played.frame_times, played.codes, strict=True)
         if c >= shape.beep_frame),
        None,
    )  # fmt: skip
    if shown is None or played.beep_onset is None or shown[1] >= shape.frame_count:
        return None
    video_late = shown[0] - shape.times[shown[1]]
    audio_late = played.beep_onset - shape.beep_time
    return audio_late - video_late


def misplaced_frames(shape: Shape, played: Played, rate: float) -> list[str]:
    """Output frames that show a source frame other than one shown within an output frame
    interval of their time (a dropped run, a shift, a frame shown at the wrong time)."""
    slack = 1 / rate
    problems = []
    for t, code in zip(played.frame_times, played.codes, strict=True):
        allowed = {shape.frame_at(t - slack), shape.frame_at(t), shape.frame_at(t + slack)}
        lo, hi = min(allowed), max(allowed)
        if not lo <= code <= hi:
            problems.append(f"{t:.3f} s shows frame {code}, expected {lo}..{hi}")
    return problems


def kept_frames(codes: Sequence[int]) -> int:
    return len(set(codes))
