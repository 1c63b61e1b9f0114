"""Build the benchmark source: real footage as a 1080x1920 30 fps H.264 + AAC phone upload.

Pieces of up to 5 s are taken in turn from the real clips in `tests/media/` (camera
footage, HEVC, a rotated clip, an edit list, MPEG-TS, VP9), each scaled and cropped to fill
1080x1920, converted to 30 fps, with its own audio (or silence when it has none), and encoded
once at high quality with Debian's ffmpeg. A clip visited again continues 5 s further on, so
long sources do not repeat the same pictures at once.

The result is cached in `bench/work/` under a key of the recipe, the clips and the ffmpeg
version: a second call with the same arguments costs nothing.

    .venv/bin/python bench/make_source.py --seconds 30
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MEDIA_DIR = REPO_ROOT / "tests" / "media"
WORK_DIR = REPO_ROOT / "bench" / "work"

WIDTH, HEIGHT, FPS = 1080, 1920, 30
PIECE_SECONDS = 5.0
# Real footage only, in the order the pieces are taken.
CLIPS = (
    "cockatoo.mp4",
    "video-h265.mp4",
    "rotate-buck-bunny.mp4",
    "edts.mp4",
    "0.ts",
    "transparency.webm",
)
# The upload itself: high quality, so that its decode cost is that of a real phone file.
ENCODE_ARGS = (
    "-c:v", "libx264", "-preset", "fast", "-crf", "18", "-profile:v", "high",
    "-pix_fmt", "yuv420p", "-g", "60",
    "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
    "-color_range", "tv",
    "-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ac", "2",
    "-movflags", "+faststart",
)  # fmt: skip


# How a piece is cut from its clip (part of the cache key: a source cut another way is rebuilt).
CUT = "trim-in-graph"


class SourceBuildError(RuntimeError):
    """ffmpeg or ffprobe failed, or the clips are missing."""


@dataclass(frozen=True, slots=True)
class Clip:
    path: Path
    duration: float
    has_audio: bool


@dataclass(frozen=True, slots=True)
class Piece:
    clip: str
    start: float
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / FPS


def probe_clip(path: Path, ffprobe: str = "ffprobe") -> Clip:
    """Duration and whether it has an audio stream, from ffprobe."""
    out = subprocess.run(
        [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
         str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise SourceBuildError(f"ffprobe failed on {path}: {out.stderr.strip()}")
    info = json.loads(out.stdout)
    kinds = {stream["codec_type"] for stream in info["streams"]}
    if "video" not in kinds:
        raise SourceBuildError(f"{path} has no video stream")
    return Clip(path, float(info["format"]["duration"]), "audio" in kinds)


def plan_pieces(clips: list[Clip], seconds: float) -> list[Piece]:
    """Round-robin pieces of up to PIECE_SECONDS, whole frames, `seconds` long in all."""
    total_frames = round(seconds * FPS)
    visits = [0] * len(clips)
    pieces: list[Piece] = []
    done = 0
    while done < total_frames:
        index = len(pieces) % len(clips)
        clip = clips[index]
        usable = clip.duration - 0.1  # stay clear of a last frame that may not decode
        start = (visits[index] * PIECE_SECONDS) % max(usable - 1.0, 1.0)
        visits[index] += 1
        left = total_frames - done
        frames = min(math.floor(min(PIECE_SECONDS, usable - start) * FPS), left)
        # A short piece is skipped only when the clip is what makes it short: a last piece
        # shorter than half a second is the source's own end (12 s looped here forever).
        if frames < min(FPS // 2, left):
            if all(c.duration < 1.0 for c in clips):
                raise SourceBuildError("every clip is shorter than a second")
            continue
        pieces.append(Piece(clip.path.name, round(start, 3), frames))
        done += frames
    return pieces


def build_command(
    clips: dict[str, Clip], pieces: list[Piece], output: Path, ffmpeg: str = "ffmpeg"
) -> list[str]:
    """One ffmpeg command: every piece fills 1080x1920 at 30 fps, then `concat`."""
    inputs: list[str] = []
    graph: list[str] = []
    for n, piece in enumerate(pieces):
        clip = clips[piece.clip]
        duration = f"{piece.seconds:.6f}"
        # The piece is cut in the graph (`trim`), from a decode of the clip from its start:
        # an input `-ss` seeks to a keyframe, and a clip with one keyframe (0.ts, an MPEG-TS
        # recording) then gave no frame at all for a piece that does not start at 0.
        start, end = f"{piece.start:.3f}", f"{piece.start + piece.seconds + 0.5:.3f}"
        inputs += ["-i", str(clip.path)]
        graph.append(
            f"[{n}:v:0]trim=start={start}:end={end},setpts=PTS-STARTPTS,"
            f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,"
            f"crop={WIDTH}:{HEIGHT},setsar=1,fps={FPS},"
            f"trim=end_frame={piece.frames},setpts=PTS-STARTPTS,format=yuv420p[v{n}]"
        )
        audio_in = (
            f"[{n}:a:0]atrim=start={start},asetpts=PTS-STARTPTS,"
            if clip.has_audio
            else "anullsrc=r=48000:cl=stereo,"
        )
        graph.append(
            f"{audio_in}aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo,"
            f"apad,atrim=duration={duration},asetpts=N/SR/TB[a{n}]"
        )
    joined = "".join(f"[v{n}][a{n}]" for n in range(len(pieces)))
    graph.append(f"{joined}concat=n={len(pieces)}:v=1:a=1[v][a]")
    return [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        *inputs,
        "-filter_complex", ";".join(graph),
        "-map", "[v]", "-map", "[a]",
        *ENCODE_ARGS,
        str(output),
    ]  # fmt: skip


def ffmpeg_version(ffmpeg: str = "ffmpeg") -> str:
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SourceBuildError(f"{ffmpeg} does not run: `apt-get install -y ffmpeg`")
    return out.stdout.splitlines()[0]


def count_frames(path: Path, ffprobe: str = "ffprobe") -> int:
    out = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-count_packets",
         "-show_entries", "stream=nb_read_packets,width,height", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    stream = json.loads(out.stdout)["streams"][0]
    if (stream["width"], stream["height"]) != (WIDTH, HEIGHT):
        raise SourceBuildError(f"{path} is {stream['width']}x{stream['height']}")
    return int(stream["nb_read_packets"])


def source_path(seconds: float, work_dir: Path = WORK_DIR) -> Path:
    return work_dir / f"source-{Fraction(seconds).limit_denominator(1000)}s.mp4".replace("/", "_")


def is_cached(output: Path, key: str) -> bool:
    sidecar = output.with_suffix(".json")
    return (
        output.is_file() and sidecar.is_file() and json.loads(sidecar.read_text()).get("key") == key
    )


def build_source(
    seconds: float,
    work_dir: Path = WORK_DIR,
    media_dir: Path = MEDIA_DIR,
    ffmpeg: str = "ffmpeg",
    ffprobe: str = "ffprobe",
    force: bool = False,
) -> Path:
    """Path of the cached `seconds`-long source, building it first when needed."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    missing = [name for name in CLIPS if not (media_dir / name).is_file()]
    if missing:
        raise SourceBuildError(f"missing clips in {media_dir}: {', '.join(missing)}")
    clips = {name: probe_clip(media_dir / name, ffprobe) for name in CLIPS}
    pieces = plan_pieces([clips[name] for name in CLIPS], seconds)
    output = source_path(seconds, work_dir)
    recipe = {
        "seconds": seconds,
        "size": [WIDTH, HEIGHT],
        "fps": FPS,
        "pieces": [asdict(piece) for piece in pieces],
        "clips": {name: (media_dir / name).stat().st_size for name in CLIPS},
        "encode": list(ENCODE_ARGS),
        "cut": CUT,
        "ffmpeg": ffmpeg_version(ffmpeg),
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    if not force and is_cached(output, key):
        return output
    work_dir.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.stem}.partial.mp4")
    command = build_command(clips, pieces, partial, ffmpeg)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise SourceBuildError(f"ffmpeg failed ({done.returncode}): {done.stderr.strip()}")
    frames = count_frames(partial, ffprobe)
    expected = sum(piece.frames for piece in pieces)
    if frames != expected:
        partial.unlink(missing_ok=True)
        raise SourceBuildError(f"built {frames} frames, expected {expected}")
    partial.replace(output)
    output.with_suffix(".json").write_text(
        json.dumps({"key": key, "frames": frames, **recipe}, indent=2) + "\n"
    )
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--media", type=Path, default=MEDIA_DIR, help="the real clips")
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    try:
        print(build_source(args.seconds, args.work_dir, args.media, force=args.force))
    except SourceBuildError as exc:
        print(f"make_source: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
