"""What a benchmarked job wrote, read back with ffprobe, and checked against the ladder plan.

Every job of a round must encode the same thing, or its time means nothing: the same rungs
(sizes, 4:2:0 8-bit, BT.709 tags, High profile), every output frame (the plan's CFR count),
IDR frames exactly every GOP (closed, fixed GOPs: the segments of all rungs align), the same
audio, poster and storyboard sizes. Two folder layouts are read:

- FFmpeg's `dash` muxer: `init-stream<i>.m4s` + `chunk-stream<i>-<n>.m4s` per stream;
- reelforge's CMAF folder: one directory per rendition with `init.mp4` + `<n>.m4s`.

A fragmented track (ISO/IEC 23000-19 §7: a CMAF header, then one fragment per segment) is
read as the byte concatenation header + segments, through ffprobe's `concat:` protocol.
Only packet headers are read (no decoding): a 30 s ladder takes about a second.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.baseline import LadderPlan

_DASH_INIT = re.compile(r"^init-stream(\d+)\.m4s$")
_CMAF_SEGMENT = re.compile(r"^\d+\.m4s$")
# x264 writes its build and options into the first frame (an SEI):
# "x264 - core 164 r3095 baee400 - H.264/MPEG-4 AVC codec - … - options: cabac=1 ref=1 …".
_X264_SEI = re.compile(rb"x264 - core (\d+(?: r\d+ [0-9a-f]+)?) - .*? - options: ([ -~]+)")
# How many threads each tool gives an encoder is its own scheduling, not what is encoded.
_THREAD_OPTIONS = ("threads", "lookahead_threads", "sliced_threads")
BT709 = {"color_primaries": "bt709", "color_transfer": "bt709", "color_space": "bt709"}


class OutputProbeError(RuntimeError):
    """ffprobe could not read a benchmarked job's output."""


@dataclass(frozen=True, slots=True)
class VideoTrack:
    width: int
    height: int
    profile: str
    pix_fmt: str
    color: dict[str, str]
    frames: int
    keyframes: list[int]  # packet (decode-order) indices of the key frames
    x264: str = ""  # the x264 build (each tool links its own)
    x264_options: str = ""  # as x264 wrote them, less the thread counts


@dataclass(frozen=True, slots=True)
class AudioTrack:
    codec: str
    sample_rate: int
    channels: int


def _ffprobe(target: str, *args: str, ffprobe: str = "ffprobe") -> dict[str, Any]:
    done = subprocess.run(
        [ffprobe, "-v", "error", "-of", "json", *args, target],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise OutputProbeError(f"ffprobe failed on {target}: {done.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(done.stdout or "{}")
    return result


def track_parts(outdir: Path) -> list[list[Path]]:
    """Each fragmented track of the folder as [header, segment, ...] in segment order."""
    tracks: list[list[Path]] = []
    for init in sorted(outdir.glob("init-stream*.m4s")):
        match = _DASH_INIT.match(init.name)
        if match:
            chunks = sorted(outdir.glob(f"chunk-stream{match[1]}-*.m4s"))
            tracks.append([init, *chunks])
    for init in sorted(outdir.glob("*/init.mp4")):
        chunks = sorted(p for p in init.parent.iterdir() if _CMAF_SEGMENT.match(p.name))
        tracks.append([init, *chunks])
    return tracks


def read_track(parts: list[Path], ffprobe: str = "ffprobe") -> VideoTrack | AudioTrack:
    target = "concat:" + "|".join(str(p) for p in parts)
    info = _ffprobe(
        target, "-show_streams", "-select_streams", "0", "-show_entries", "packet=flags",
        "-show_packets", ffprobe=ffprobe,
    )  # fmt: skip
    (stream,) = info["streams"]
    if stream["codec_type"] == "audio":
        return AudioTrack(stream["codec_name"], int(stream["sample_rate"]), stream["channels"])
    packets = info.get("packets", [])
    build, options = x264_sei(parts)
    return VideoTrack(
        width=stream["width"],
        height=stream["height"],
        profile=stream.get("profile", ""),
        pix_fmt=stream.get("pix_fmt", ""),
        color={key: stream.get(key, "unknown") for key in (*BT709, "color_range")},
        frames=len(packets),
        keyframes=[i for i, packet in enumerate(packets) if packet["flags"].startswith("K")],
        x264=build,
        x264_options=options,
    )


def x264_sei(parts: list[Path]) -> tuple[str, str]:
    """The x264 build and options that encoded a track, from its first segment's SEI."""
    found = _X264_SEI.search(parts[1].read_bytes()[:65536]) if len(parts) > 1 else None
    if found is None:
        return "", ""
    options = [
        option
        for option in found[2].decode().split()
        if option.partition("=")[0] not in _THREAD_OPTIONS
    ]
    return found[1].decode(), " ".join(options)


def image_size(path: Path, ffprobe: str = "ffprobe") -> list[int] | None:
    if not path.is_file():
        return None
    (stream,) = _ffprobe(str(path), "-show_streams", ffprobe=ffprobe)["streams"]
    return [stream["width"], stream["height"]]


def describe_outputs(outdir: Path, ffprobe: str = "ffprobe") -> dict[str, Any]:
    """The video rungs (largest first), the audio, the poster and storyboard sizes."""
    video: list[VideoTrack] = []
    audio: list[AudioTrack] = []
    for parts in track_parts(outdir):
        track = read_track(parts, ffprobe)
        if isinstance(track, VideoTrack):
            video.append(track)
        else:
            audio.append(track)
    video.sort(key=lambda t: (t.width * t.height, t.width), reverse=True)
    return {
        "video": [asdict(t) for t in video],
        "audio": [asdict(t) for t in audio],
        "poster": image_size(outdir / "poster.jpg", ffprobe),
        "storyboard": image_size(outdir / "storyboard.jpg", ffprobe),
    }


def expected_outputs(plan: LadderPlan, thumbnails: bool) -> dict[str, Any]:
    """What every job must write for this plan (the engine's decisions, as in baseline.py).
    The x264 options are not known in advance: `option_differences` compares the jobs'."""
    frames = plan.expected_frames
    video = [
        {
            "width": rung.width,
            "height": rung.height,
            "profile": settings.profile.capitalize(),
            "pix_fmt": "yuv420p",
            "color": {**BT709, "color_range": "tv"},
            "frames": frames,
            "keyframes": list(range(0, frames, settings.gop_frames)),
        }
        for rung, settings in zip(plan.rungs, plan.settings, strict=True)
    ]
    audio = [] if plan.audio is None else [
        asdict(AudioTrack(plan.audio.codec, plan.audio.sample_rate, plan.audio.channels))
    ]  # fmt: skip
    (tw, th), (columns, rows) = plan.thumbnail_size, plan.storyboard_grid
    return {
        "video": video,
        "audio": audio,
        "poster": [plan.rungs[0].width, plan.rungs[0].height] if thumbnails else None,
        "storyboard": [tw * columns, th * rows] if thumbnails else None,
    }


def _short(value: Any) -> Any:
    return [*value[:8], "…"] if isinstance(value, list) and len(value) > 8 else value


def differences(expected: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """One line per way `found` differs from `expected` (empty: the same outputs)."""
    problems: list[str] = []
    if len(found["video"]) != len(expected["video"]):
        sizes = [f"{t['width']}x{t['height']}" for t in found["video"]]
        problems.append(f"{len(found['video'])} video rungs ({', '.join(sizes)}), "
                        f"expected {len(expected['video'])}")  # fmt: skip
    for want, got in zip(expected["video"], found["video"], strict=False):
        name = f"{want['width']}x{want['height']}"
        for key, value in want.items():
            if got[key] != value:
                problems.append(f"rung {name}: {key} {_short(got[key])}, expected {_short(value)}")
    for key in ("audio", "poster", "storyboard"):
        if found[key] != expected[key]:
            problems.append(f"{key}: {found[key]}, expected {expected[key]}")
    return problems


def option_differences(found: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Per job, the rungs whose x264 options (threads aside) differ from the first job's:
    every tool must have asked x264 for the same encoding."""
    jobs = [job for job, outputs in found.items() if outputs["video"]]
    if not jobs:
        return {}
    reference = found[jobs[0]]["video"]
    problems: dict[str, list[str]] = {}
    for job in jobs[1:]:
        for want, got in zip(reference, found[job]["video"], strict=False):
            if got["x264_options"] != want["x264_options"]:
                mine = set(got["x264_options"].split())
                theirs = set(want["x264_options"].split())
                problems.setdefault(job, []).append(
                    f"rung {got['width']}x{got['height']}: x264 options "
                    f"{' '.join(sorted(mine - theirs))}, {jobs[0]} has "
                    f"{' '.join(sorted(theirs - mine))}"
                )
    return problems
