"""The one place encoder options are built, with a registry by encoder name.

Each profile turns a ladder rung into `EncoderSettings`: the options PyAV opens the encoder
with, and the same settings as ffmpeg command-line arguments (the benchmark's baseline).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

import av

from engine.errors import EncoderUnavailableError
from ladders.model import Rung

DEFAULT_PRESET = "veryfast"


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    encoder: str
    preset: str
    crf: int | None
    maxrate: int
    bufsize: int
    gop_frames: int
    frame_rate: Fraction
    profile: str = "high"
    options: dict[str, str] = field(default_factory=dict)

    @property
    def gop_seconds(self) -> float:
        return float(self.gop_frames / self.frame_rate)

    def to_json(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "preset": self.preset,
            "profile": self.profile,
            "crf": self.crf,
            "maxrate": self.maxrate,
            "bufsize": self.bufsize,
            "gop_frames": self.gop_frames,
            "gop_seconds": round(self.gop_seconds, 6),
            "options": dict(self.options),
        }


def rung_settings(
    encoder: str,
    preset: str,
    rung: Rung,
    gop_frames: int,
    frame_rate: Fraction,
    options: dict[str, str],
) -> EncoderSettings:
    return EncoderSettings(
        encoder=encoder,
        preset=preset,
        crf=rung.crf,
        maxrate=rung.maxrate,
        bufsize=rung.bufsize,
        gop_frames=gop_frames,
        frame_rate=frame_rate,
        options=options,
    )


# x264's initial VBV buffer fullness (`vbv-init`, a fraction of bufsize; x264's default 0.9)
# for a chunk that follows another (engine/chunked.py). A fresh encoder may spend its initial
# buffer at once; the single pass does that once, but every chunk's encoder would, so a window
# across chunk starts could exceed maxrate by the sum. Starting a following chunk with a
# nearly empty buffer keeps the stitched stream within maxrate + bufsize over any window as
# long as the chunk before ends at least that full (measured: tests/test_chunked.py).
CHUNK_VBV_INIT = 0.3


def chunk_settings(settings: EncoderSettings, follows: bool) -> EncoderSettings:
    """`settings` for a chunk's encoder: unchanged for the first chunk (it starts as the
    single pass does); for a following chunk, libx264 starts its VBV at `CHUNK_VBV_INIT`."""
    if not follows or settings.encoder != X264Profile.name:
        return settings
    options = dict(settings.options)
    options["x264-params"] = f"{options['x264-params']}:vbv-init={CHUNK_VBV_INIT}"
    return dataclasses.replace(settings, options=options)


class EncoderProfile(Protocol):
    name: str
    gpu: bool  # needs a GPU worker (worker.py routes a chunked run's parts by it)

    def available(self) -> bool: ...

    def settings(
        self, rung: Rung, frame_rate: Fraction, gop_frames: int, preset: str, threads: int = 0
    ) -> EncoderSettings: ...

    def ffmpeg_args(self, settings: EncoderSettings, index: int) -> list[str]: ...


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as a container's cpuset sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def thread_plan(rungs: Sequence[Rung], cpus: int) -> list[int]:
    """Frame threads for each rung's encoder when all of them encode at once.

    Left to itself every x264 encoder sizes its pool for the whole machine (1.5 threads per
    CPU, x264's `threads=auto`), so a 4-rung ladder on 2 CPUs runs 12 frame threads that
    contend for 2 cores; the encoders of the ladder already run side by side, one thread each
    here (engine/encode.py). So the machine's CPUs (+1, to cover the waits of frame threads
    on their reference rows) are shared out by each rung's part of the pixels, at least one
    frame thread per rung: on 2 CPUs 1080/720/540/360 get 2/1/1/1, on 16 CPUs 9/4/2/1.
    """
    pixels = [rung.width * rung.height for rung in rungs]
    total = sum(pixels) or 1
    budget = max(1, cpus) + 1
    return [max(1, round(budget * p / total)) for p in pixels]


def gop_frames_for(frame_rate: Fraction, segment_seconds: float) -> int:
    """Frames per GOP (= per segment): the segment duration rounded to whole frames."""
    return max(1, round(frame_rate * Fraction(segment_seconds).limit_denominator(1000)))


class X264Profile:
    """libx264, capped CRF, closed GOP of fixed length, IDR only where the engine forces one."""

    name = "libx264"
    gpu = False

    def available(self) -> bool:
        return "libx264" in av.codecs_available

    def settings(
        self, rung: Rung, frame_rate: Fraction, gop_frames: int, preset: str, threads: int = 0
    ) -> EncoderSettings:
        """`threads`: x264 frame threads (`thread_plan`); 0 leaves it to x264 (auto)."""
        x264_params = ":".join(
            (
                f"keyint={gop_frames}",
                f"min-keyint={gop_frames}",
                "scenecut=0",
                "open-gop=0",
                "b-adapt=0",
                "force-cfr=1",
            )
        )
        options = {
            "preset": preset,
            "crf": str(rung.crf),
            "profile": "high",
            "maxrate": str(rung.maxrate),
            "bufsize": str(rung.bufsize),
            "forced-idr": "1",
            "x264-params": x264_params,
        }
        if threads > 0:
            options["threads"] = str(threads)
        return rung_settings(self.name, preset, rung, gop_frames, frame_rate, options)

    def ffmpeg_args(self, settings: EncoderSettings, index: int) -> list[str]:
        opts = settings.options
        return [
            f"-c:v:{index}",
            "libx264",
            f"-preset:v:{index}",
            opts["preset"],
            f"-crf:v:{index}",
            opts["crf"],
            f"-profile:v:{index}",
            opts["profile"],
            f"-maxrate:v:{index}",
            opts["maxrate"],
            f"-bufsize:v:{index}",
            opts["bufsize"],
            f"-g:v:{index}",
            str(settings.gop_frames),
            f"-x264-params:v:{index}",
            opts["x264-params"],
            *([f"-threads:v:{index}", opts["threads"]] if "threads" in opts else []),
        ]


class NvencProfile:
    """h264_nvenc for GPU workers: constant-quality VBR capped by maxrate, fixed GOP."""

    name = "h264_nvenc"
    gpu = True

    def available(self) -> bool:
        return nvenc_opens()

    def settings(
        self, rung: Rung, frame_rate: Fraction, gop_frames: int, preset: str, threads: int = 0
    ) -> EncoderSettings:
        """`threads` is x264's concern: NVENC's work is on the GPU."""
        options = {
            "preset": "p4",
            "tune": "hq",
            "rc": "vbr",
            "cq": str(rung.crf),
            "profile": "high",
            "maxrate": str(rung.maxrate),
            "bufsize": str(rung.bufsize),
            "g": str(gop_frames),
            "forced-idr": "1",
            "no-scenecut": "1",
            "strict_gop": "1",
            "bf": "2",
        }
        return rung_settings(self.name, options["preset"], rung, gop_frames, frame_rate, options)

    def ffmpeg_args(self, settings: EncoderSettings, index: int) -> list[str]:
        args = [f"-c:v:{index}", "h264_nvenc"]
        for key, value in settings.options.items():
            args += [f"-{key}:v:{index}", value]
        return args


@functools.cache
def nvenc_opens() -> bool:
    """True when an NVENC session really opens here (the codec is compiled in everywhere)."""
    if "h264_nvenc" not in av.codecs_available:
        return False
    try:
        ctx: Any = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.open()
    except (av.error.FFmpegError, ValueError, OSError):
        return False
    return True


ENCODERS: dict[str, EncoderProfile] = {
    X264Profile.name: X264Profile(),
    NvencProfile.name: NvencProfile(),
}


def select_encoder(preference: str = "auto") -> EncoderProfile:
    """`auto`: NVENC when a GPU is there, else libx264. A named encoder must be available."""
    if preference == "auto":
        nvenc = ENCODERS[NvencProfile.name]
        return nvenc if nvenc.available() else ENCODERS[X264Profile.name]
    try:
        profile = ENCODERS[preference]
    except KeyError:
        raise EncoderUnavailableError(
            f"unknown encoder {preference!r}; known: {', '.join(ENCODERS)}"
        ) from None
    if not profile.available():
        raise EncoderUnavailableError(f"encoder {preference} cannot be opened on this machine")
    return profile
