"""FFmpeg as a third-party player: the times its HLS and DASH demuxers present, in two versions.

FFmpeg-based players (mpv, Kodi, VLC's avformat path) show what libavformat's demuxers give
them. `play_ffmpeg(player, url)` runs the `ffmpeg` CLI on a manifest over HTTP with `-copyts`
and `-fps_mode passthrough` (so the CLI shifts, drops and repeats nothing), decoding once into
two outputs:

- `-f framecrc FILE`: each decoded frame's presentation time as the player would present it,
  written to a file (showinfo's log lines interleave across ffmpeg 9's threads and with its
  progress line, so they lose frames now and then);
- `-f null -`: a muxer that checks that times increase, so FFmpeg itself prints "non
  monotonically increasing dts" when they do not (issue 13: the DASH demuxer restarts its
  B-frame shift per segment, and a last segment without B-frames steps back).

`FFMPEG_PLAYERS` names the two builds here: Debian's 5.1 (`ffmpeg` on PATH) and 9 (the
imageio-ffmpeg binary in the virtualenv). A missing binary is an error, never a skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg

_TIME_BASE = re.compile(r"^#tb (\d+): (\d+)/(\d+)")
_TIMESTAMP = re.compile(
    r"monoton|timestamp|discontinuity|out of order|invalid dts|invalid pts|backward|"
    r"non[- ]increasing|dts.*pts|pts.*dts|Queue input is backward",
    re.I,
)


class FfmpegPlayerError(RuntimeError):
    """An ffmpeg run that gave no usable answer (missing binary, failed read, timeout)."""


def ffmpeg_players() -> dict[str, str]:
    """{'ffmpeg-5.1': path, 'ffmpeg-9': path}: the two builds the suite plays with."""
    system = shutil.which("ffmpeg")
    if system is None:
        raise FfmpegPlayerError("Debian's ffmpeg not found: run scripts/bootstrap.sh")
    return {"ffmpeg-5.1": system, "ffmpeg-9": imageio_ffmpeg.get_ffmpeg_exe()}


FFMPEG_PLAYERS = ("ffmpeg-5.1", "ffmpeg-9")


@dataclass(frozen=True, slots=True)
class FfmpegPlayback:
    """First presentation time per kind ("video", "audio"), video frame times in output order,
    and the timestamp warnings FFmpeg printed."""

    player: str
    url: str
    version: str
    first: dict[str, float]
    video_times: tuple[float, ...]
    timestamp_warnings: tuple[str, ...]
    log_tail: str = field(repr=False, default="")

    def av_offset(self) -> float:
        """How much later the first video frame is presented than the first audio (s)."""
        return self.first["video"] - self.first["audio"]

    def backward_steps(self) -> list[tuple[int, float, float]]:
        """(frame, time, previous time) wherever a decoded video frame's time does not increase."""
        pairs = zip(self.video_times, self.video_times[1:], strict=False)
        return [(n + 1, b, a) for n, (a, b) in enumerate(pairs) if b <= a]

    def summary(self) -> str:
        firsts = ", ".join(f"{kind} {t:.4f}" for kind, t in sorted(self.first.items()))
        return (
            f"{self.player} ({self.version}) {self.url}: first {firsts}; "
            f"{len(self.video_times)} video frames, {len(self.backward_steps())} backward; "
            f"{len(self.timestamp_warnings)} timestamp warnings {list(self.timestamp_warnings[:3])}"
        )


def _version(binary: str) -> str:
    out = subprocess.run([binary, "-version"], capture_output=True, text=True, check=False)
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.split(" ")[2] if first.startswith("ffmpeg version") else first


def play_ffmpeg(player: str, url: str, timeout: float = 120) -> FfmpegPlayback:
    """Read `url` (master.m3u8 or manifest.mpd over HTTP) with `player` (see FFMPEG_PLAYERS):
    its first video rendition and first audio stream, decoded once (module doc)."""
    binary = ffmpeg_players()[player]
    maps = ["-map", "0:v:0", "-map", "0:a:0", "-fps_mode", "passthrough"]
    raw = ["-c:v", "wrapped_avframe", "-c:a", "pcm_s16le"]
    with tempfile.TemporaryDirectory(prefix="ffplayer-") as tmp:
        frames = Path(tmp) / "frames.txt"
        command = [
            binary, "-hide_banner", "-nostdin", "-nostats", "-y", "-copyts", "-i", url,
            *maps, *raw, "-f", "framecrc", str(frames),
            *maps, *raw, "-f", "null", "-",
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise FfmpegPlayerError(f"{player} {url}: no end within {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise FfmpegPlayerError(
                f"{player} {url} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
            )
        times = read_framecrc(frames.read_text())
    warnings = [line.strip() for line in proc.stderr.splitlines() if _TIMESTAMP.search(line)]
    if not times.get(0) or not times.get(1):
        raise FfmpegPlayerError(f"{player} {url}: no video or no audio:\n{proc.stderr[-3000:]}")
    return FfmpegPlayback(
        player=player,
        url=url,
        version=_version(binary),
        first={"video": times[0][0], "audio": times[1][0]},
        video_times=tuple(times[0]),
        timestamp_warnings=tuple(warnings),
        log_tail=proc.stderr[-20000:],
    )


def read_framecrc(text: str) -> dict[int, list[float]]:
    """Each stream's frame times (s), in output order, from `-f framecrc` text: `#tb N: a/b`
    headers, then `stream, dts, pts, duration, size, crc` lines."""
    bases: dict[int, Fraction] = {}
    times: dict[int, list[float]] = {}
    for line in text.splitlines():
        if match := _TIME_BASE.match(line):
            bases[int(match[1])] = Fraction(int(match[2]), int(match[3]))
        elif line and not line.startswith("#"):
            stream, _dts, pts, *_ = (field.strip() for field in line.split(","))
            times.setdefault(int(stream), []).append(float(int(pts) * bases[int(stream)]))
    return times
