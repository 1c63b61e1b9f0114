"""Test clips generated with the system ffmpeg from lavfi sources, and what each must contain.

Every clip is a function `name(cache_dir) -> Path` that writes `cache_dir/<name><suffix>` once
and returns it; a pytest session passes one directory so each clip is built once. `GENERATED`
maps each name to its builder and its `Expected` properties, for parametrized tests:

    @pytest.mark.parametrize("name", sorted(GENERATED))
    def test_something(name, clip_dir):
        path = GENERATED[name].build(clip_dir)

Clips are 5 s (`SECONDS`) and `-preset ultrafast` so the whole set builds in well under a
minute on two cores.
"""

from __future__ import annotations

import os
import random
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

FFMPEG = "ffmpeg"
SECONDS = 5
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "26"]
AAC = ["-c:a", "aac", "-b:a", "128k"]


@dataclass(frozen=True, slots=True)
class Expected:
    """What ffprobe finds in the clip; `None` means not pinned down."""

    suffix: str = ".mp4"
    width: int | None = None  # coded size
    height: int | None = None
    display: tuple[int, int] | None = None  # upright display size when it differs
    frame_rate: Fraction | None = None  # None for VFR
    pix_fmt: str | None = None
    duration: float | None = None  # video span in seconds
    audio_channels: int = 0  # 0: no audio stream
    sample_rate: int | None = None
    rotation: int = 0
    vfr: bool = False
    probes: bool = True  # ffprobe finds streams in it
    decodes: bool = True  # `ffmpeg -v error -i X -f null -` prints nothing
    reject: tuple[str, ...] = ()  # InputRejected codes the engine may answer; () = accept


Builder = Callable[[Path], Path]


@dataclass(frozen=True, slots=True)
class GeneratedClip:
    build: Builder
    expect: Expected


GENERATED: dict[str, GeneratedClip] = {}


def _clip(expect: Expected) -> Callable[[Callable[[Path], None]], Builder]:
    """Register a writer as a cached builder named after the function."""

    def register(write: Callable[[Path], None]) -> Builder:
        name = write.__name__

        def build(cache_dir: Path) -> Path:
            path = cache_dir / f"{name}{expect.suffix}"
            if not path.exists():
                cache_dir.mkdir(parents=True, exist_ok=True)
                # Write beside the final name and rename, so parallel sessions never see half.
                part = cache_dir / f".{name}.{os.getpid()}{expect.suffix}"
                write(part)
                os.replace(part, path)
            return path

        build.__name__ = build.__qualname__ = name
        build.__doc__ = write.__doc__
        GENERATED[name] = GeneratedClip(build, expect)
        return build

    return register


def ffmpeg(*args: str) -> None:
    """Run the system ffmpeg quietly; raise with its stderr on failure."""
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-v", "error", "-y", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr}")


def _lavfi(graph: str) -> list[str]:
    return ["-f", "lavfi", "-i", graph]


def _tone(channels: str = "stereo", rate: int = 48_000, seconds: float = SECONDS) -> list[str]:
    """A different sine per channel, so a swapped or dropped channel is audible."""
    count = {"mono": 1, "stereo": 2, "5.1": 6}[channels]
    exprs = "|".join(f"0.2*sin(2*PI*{220 * (k + 2)}*t)" for k in range(count))
    return _lavfi(f"aevalsrc=exprs='{exprs}':channel_layout={channels}:s={rate}:d={seconds}")


def _testsrc(width: int, height: int, rate: str = "30", seconds: float = SECONDS) -> list[str]:
    return _lavfi(f"testsrc2=size={width}x{height}:rate={rate}:duration={seconds}")


@_clip(Expected(width=1080, height=1920, frame_rate=Fraction(30), pix_fmt="yuv420p",
                duration=SECONDS, audio_channels=2, sample_rate=48_000))  # fmt: skip
def portrait(dest: Path) -> None:
    """Phone-style 1080x1920 30 fps H.264 + stereo AAC 48 kHz."""
    ffmpeg(*_testsrc(1080, 1920), *_tone(), *X264, "-pix_fmt", "yuv420p", *AAC, str(dest))


@_clip(Expected(width=1920, height=1080, frame_rate=Fraction(30), pix_fmt="yuv420p",
                duration=SECONDS, audio_channels=2, sample_rate=44_100))  # fmt: skip
def landscape(dest: Path) -> None:
    """1920x1080 30 fps scrolling SMPTE bars + pink noise at 44.1 kHz (resampled to 48k)."""
    bars = f"smptehdbars=size=1920x1080:rate=30:duration={SECONDS},scroll=h=0.004"
    noise = f"anoisesrc=color=pink:sample_rate=44100:amplitude=0.3:duration={SECONDS}"
    ffmpeg(*_lavfi(bars), *_lavfi(noise), *X264, "-pix_fmt", "yuv420p", *AAC, "-ac", "2",
           str(dest))  # fmt: skip


@_clip(Expected(width=720, height=720, frame_rate=Fraction(30), pix_fmt="yuv420p",
                duration=SECONDS, audio_channels=1, sample_rate=48_000))  # fmt: skip
def square(dest: Path) -> None:
    """720x720 zooming Mandelbrot, mono audio (must be upmixed to stereo)."""
    ffmpeg(*_lavfi("mandelbrot=size=720x720:rate=30"), *_tone("mono"), "-t", str(SECONDS),
           *X264, "-pix_fmt", "yuv420p", *AAC, str(dest))  # fmt: skip


@_clip(Expected(width=1081, height=1919, frame_rate=Fraction(30), pix_fmt="yuv420p",
                duration=SECONDS, audio_channels=2, sample_rate=48_000))  # fmt: skip
def odd(dest: Path) -> None:
    """1081x1919 (odd both ways) MPEG-4 Part 2, which unlike x264 4:2:0 takes odd sizes.

    testsrc2 silently rounds its size down to even, hence the scale after it."""
    ffmpeg(*_testsrc(1080, 1920), *_tone(), "-vf", "scale=1081:1919,format=yuv420p",
           "-c:v", "mpeg4", "-q:v", "5", *AAC, str(dest))  # fmt: skip


@_clip(Expected(width=1280, height=720, frame_rate=Fraction(30), pix_fmt="yuv420p10le",
                duration=SECONDS, audio_channels=2, sample_rate=48_000))  # fmt: skip
def ten_bit(dest: Path) -> None:
    """1280x720 H.264 High 10 (yuv420p10le)."""
    ffmpeg(*_testsrc(1280, 720), *_tone(), *X264, "-pix_fmt", "yuv420p10le", *AAC, str(dest))


@_clip(Expected(width=1280, height=720, frame_rate=Fraction(30), pix_fmt="yuv420p",
                duration=SECONDS, audio_channels=6, sample_rate=48_000))  # fmt: skip
def surround(dest: Path) -> None:
    """1280x720 + 6-channel AAC in the 5.1 layout (must be downmixed to stereo)."""
    ffmpeg(*_testsrc(1280, 720), *_tone("5.1"), *X264, "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "256k", str(dest))  # fmt: skip


@_clip(Expected(width=1280, height=720, frame_rate=Fraction(30), pix_fmt="yuv420p",
                duration=SECONDS))  # fmt: skip
def no_audio(dest: Path) -> None:
    """1280x720 video only."""
    ffmpeg(*_testsrc(1280, 720), *X264, "-pix_fmt", "yuv420p", str(dest))


# Frame times: 2 s at 30 fps, 2 s at 10 fps, 1 s at 60 fps (140 frames, ends at 5 s).
_VFR_PTS = "if(lt(N,60),N/30,if(lt(N,80),2+(N-60)/10,4+(N-80)/60))/TB"


@_clip(Expected(width=1280, height=720, pix_fmt="yuv420p", duration=SECONDS,
                audio_channels=2, sample_rate=48_000, vfr=True))  # fmt: skip
def vfr(dest: Path) -> None:
    """Real variable frame rate: the frame interval goes 1/30, 1/10, then 1/60 s.

    The 1/90000 time bases keep ffmpeg from rounding the times back onto a 1/30 grid."""
    graph = f"testsrc2=size=1280x720:rate=30,settb=1/90000,setpts='{_VFR_PTS}'"
    ffmpeg(*_lavfi(graph), *_tone(), "-frames:v", "140", "-fps_mode", "vfr",
           "-enc_time_base", "1/90000", *X264, "-pix_fmt", "yuv420p", *AAC, "-t", str(SECONDS),
           str(dest))  # fmt: skip


@_clip(Expected(width=1280, height=720, frame_rate=Fraction(30000, 1001), pix_fmt="yuv420p",
                duration=150 * 1001 / 30000, audio_channels=2, sample_rate=48_000))  # fmt: skip
def ntsc(dest: Path) -> None:
    """1280x720 at 29.97 (30000/1001) fps, 150 frames."""
    ffmpeg(*_testsrc(1280, 720, rate="30000/1001"), *_tone(), "-frames:v", "150", *X264,
           "-pix_fmt", "yuv420p", *AAC, str(dest))  # fmt: skip


@_clip(Expected(width=1280, height=720, display=(720, 1280), frame_rate=Fraction(30),
                pix_fmt="yuv420p", duration=SECONDS, audio_channels=2, sample_rate=48_000,
                rotation=270))  # fmt: skip
def rotated(dest: Path) -> None:
    """1280x720 stored sideways with a -90° display matrix, like a phone held upright.

    ffmpeg 5.1 cannot write a display matrix from the command line (`-metadata rotate`
    is ignored), so the video track header's matrix is patched in place."""
    ffmpeg(*_testsrc(1280, 720), *_tone(), *X264, "-pix_fmt", "yuv420p", *AAC, str(dest))
    _patch_tkhd_matrix(dest, (0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000))


def _patch_tkhd_matrix(path: Path, matrix: tuple[int, ...]) -> None:
    """Overwrite the first track header's matrix (ISO/IEC 14496-12 §8.3.2); track 1 is video."""
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd") + 4
    version = data[at]
    # version/flags, times, track_ID, reserved, duration, reserved[2], layer, group, volume, pad
    offset = at + 4 + (8 + 4 + 4 + 8 if version == 1 else 4 + 4 + 4 + 4 + 4) + 8 + 8
    data[offset : offset + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))


# Hostile and broken inputs. `reject` lists the engine error codes that are a right answer.


@_clip(Expected(probes=False, decodes=False, reject=("not_media",)))
def text_as_mp4(dest: Path) -> None:
    """A text file renamed .mp4."""
    dest.write_text("This is not a video.\n" * 200)


@_clip(Expected(probes=False, decodes=False, reject=("not_media",)))
def empty(dest: Path) -> None:
    """A zero-byte .mp4."""
    dest.write_bytes(b"")


@_clip(Expected(probes=False, decodes=False, reject=("not_media", "undecodable")))
def truncated(dest: Path) -> None:
    """The first 30% of a good MP4 whose `moov` comes last: no index at all."""
    _truncate_good_mp4(dest, faststart=False)


@_clip(Expected(width=1280, height=720, pix_fmt="yuv420p", audio_channels=2, decodes=False,
                reject=("undecodable",)))  # fmt: skip
def truncated_faststart(dest: Path) -> None:
    """The first 30% of a good MP4 with `moov` first: the index promises 5 s, data stops."""
    _truncate_good_mp4(dest, faststart=True)


def _truncate_good_mp4(dest: Path, faststart: bool) -> None:
    whole = dest.with_name(dest.stem + ".whole.mp4")
    flags = ["-movflags", "+faststart"] if faststart else []
    ffmpeg(*_testsrc(1280, 720), *_tone(), *X264, "-pix_fmt", "yuv420p", *AAC, *flags,
           str(whole))  # fmt: skip
    data = whole.read_bytes()
    whole.unlink()
    dest.write_bytes(data[: len(data) * 3 // 10])


@_clip(Expected(suffix=".m4a", audio_channels=2, sample_rate=48_000,
                reject=("no_video_stream",)))  # fmt: skip
def audio_only(dest: Path) -> None:
    """AAC stereo in an .m4a, no video stream."""
    ffmpeg(*_tone(), *AAC, str(dest))


@_clip(Expected(width=1280, height=720, frame_rate=Fraction(30), decodes=False,
                reject=("undecodable",)))  # fmt: skip
def garbage_video(dest: Path) -> None:
    """A well-formed MP4 whose H.264 samples are random bytes: the index and the SPS/PPS
    are intact, so it probes as 1280x720 H.264, but no frame decodes (so no pix_fmt)."""
    ffmpeg(*_testsrc(1280, 720), *X264, "-pix_fmt", "yuv420p", "-movflags", "+faststart",
           str(dest))  # fmt: skip
    data = bytearray(dest.read_bytes())
    at = data.index(b"mdat") + 4
    size = struct.unpack(">I", data[at - 8 : at - 4])[0] - 8
    data[at : at + size] = random.Random(20240607).randbytes(size)
    dest.write_bytes(bytes(data))


@_clip(Expected(width=256, height=144, frame_rate=Fraction(1), pix_fmt="yuv420p",
                duration=620.0, audio_channels=1, sample_rate=8_000,
                reject=("too_long",)))  # fmt: skip
def too_long(dest: Path) -> None:
    """620 s (the limit is 600) at 1 fps, 256x144 (just at a 144 px minimum side), so it is
    cheap to make."""
    ffmpeg(*_testsrc(256, 144, rate="1", seconds=620), *_tone("mono", 8_000, 620), *X264,
           "-pix_fmt", "yuv420p", *AAC, "-b:a", "16k", str(dest))  # fmt: skip


@_clip(Expected(width=4200, height=240, frame_rate=Fraction(30), pix_fmt="yuv420p",
                duration=2.0, reject=("too_large",)))  # fmt: skip
def oversized(dest: Path) -> None:
    """4200x240: wider than 4096 px, past the engine's limit and most hardware decoders'."""
    ffmpeg(*_testsrc(4200, 240, seconds=2), *X264, "-pix_fmt", "yuv420p", str(dest))


def build_all(cache_dir: Path) -> dict[str, Path]:
    """Every generated clip, built if missing."""
    return {name: clip.build(cache_dir) for name, clip in GENERATED.items()}


def chunking_clip(dest: Path, size: str = "640x360") -> Path:
    """10.4 s at 30 fps with a 440 Hz tone, keyframes every 45 frames (1.5 s): with 2 s
    segments and 2 segments a chunk, three chunks (the last one with the 2.4 s tail), and
    source keyframes that never fall on a chunk's start (split-and-stitch tests)."""
    subprocess.run(
        [FFMPEG, "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration=10.4",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10.4",
         "-c:v", "libx264", "-preset", "ultrafast", "-crf", "26", "-g", "45",
         "-pix_fmt", "yuv420p", *AAC, "-ac", "2", str(dest)],
        check=True, capture_output=True,
    )  # fmt: skip
    return dest
