"""GStreamer 1.22 as a third-party player: what `playbin` / `playbin3` present, read from its log.

`play_gst(url)` runs `gst-launch-1.0 PLAYBIN uri=URL` with two fakesinks (`vs` for video, `as`
for audio, `sync=false` so a clip plays as fast as it decodes) and reads GStreamer's own debug
log, never the racy `-v` last-message notifications:

- each sink's `configured segment` lines (basesink, level 5) give the segment in force, and its
  `got times start: X, end: Y` lines each buffer's times, so a buffer's running time is
  `(X - segment.start) / rate + segment.base` (GStreamer design docs, "synchronisation": the
  running time is what a sink with `sync=true` waits for, so it is what the viewer sees);
- `creating element "NAME"` (GST_ELEMENT_FACTORY, level 4) lists the elements that were made,
  and decodebin's `Couldn't set NAME to READY` those that refused to run, so the demuxers that
  actually played are the ones made and not refused (`playbin` makes hlsdemux2/dashdemux2
  first, which refuse it: "Element requires a streams-aware context"; decodebin2 then falls
  back to the legacy hlsdemux/dashdemux of gst-plugins-bad);
- WARN/ERROR lines about timestamps (qtdemux, decoders, "non monotonic", "discont",
  "timestamp") are collected; the rest (GstSoupSession serialization, say) is noise.

The run is bounded: past `timeout` the whole process group is killed and `GstTimeout` raised.
A missing `gst-launch-1.0` or plugin is a `GstNotInstalledError`, never a skip.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

GST_LAUNCH = "gst-launch-1.0"
PLAYBINS = ("playbin", "playbin3")
# Element factories that need a plugin package of their own (bootstrap.sh installs them).
REQUIRED_ELEMENTS = ("playbin3", "hlsdemux2", "dashdemux2", "hlsdemux", "dashdemux", "qtdemux",
                     "avdec_h264", "avdec_aac", "souphttpsrc", "fakesink")  # fmt: skip
DEMUXERS = frozenset({"hlsdemux", "hlsdemux2", "dashdemux", "dashdemux2", "qtdemux", "tsdemux"})
SINKS = {"vs": "video", "as": "audio"}
_KILL_GRACE_S = 5.0

_TIME = r"(\d+):(\d\d):(\d\d\.\d+)"
_SEGMENT = re.compile(
    r"<(vs|as)> configured segment time segment start=(\S+), offset=\S+, stop=\S+, "
    r"rate=([-\d.]+), applied_rate=\S+, flags=\S+, time=\S+, base=(\S+?),"
)
_TIMES = re.compile(r"<(vs|as)> got times start: (\S+), end: (\S+)")
_CREATED = re.compile(r'creating element "([^"]+)"')
_REFUSED = re.compile(r"Couldn't set (\S+?) to READY")
_LEVEL = re.compile(r"^\S+\s+\d+\s+\S+\s+(WARN|ERROR)\s+(\S+)\s+(.*)$")
_TIMESTAMP_WORDS = re.compile(
    r"timestamp|monoton|discont|pts|dts|out of order|backwards|negative|too late|dropp", re.I
)
_TIMESTAMP_CATEGORIES = frozenset({"qtdemux", "libav", "videodecoder", "audiodecoder", "h264parse",
                                   "aacparse", "basesink"})  # fmt: skip


class GstError(RuntimeError):
    """A GStreamer run that gave no usable answer."""


class GstNotInstalledError(GstError):
    """gst-launch-1.0 or one of the plugins in REQUIRED_ELEMENTS is missing."""


class GstTimeoutError(GstError):
    """The pipeline did not reach EOS within its time limit (its process group was killed)."""


@dataclass(frozen=True, slots=True)
class SinkTimes:
    """Running times (s) of the first buffer's start and the last buffer's end at one sink."""

    first: float
    last: float
    buffers: int


@dataclass(frozen=True, slots=True)
class GstPlayback:
    url: str
    playbin: str
    returncode: int
    sinks: dict[str, SinkTimes]  # "video" / "audio"
    demuxers: tuple[str, ...]  # factories made and not refused, in order of creation
    refused: tuple[str, ...]  # factories that refused to go to READY
    timestamp_warnings: tuple[str, ...]
    errors: tuple[str, ...]  # every ERROR line
    log_tail: str = field(repr=False, default="")

    @property
    def reached_eos(self) -> bool:
        return self.returncode == 0 and "Got EOS from element" in self.log_tail

    def first(self, kind: str) -> float:
        return self.sinks[kind].first

    def last(self, kind: str) -> float:
        return self.sinks[kind].last

    def av_offset(self) -> float:
        """How much later the first video buffer is presented than the first audio (s)."""
        return self.first("video") - self.first("audio")

    def summary(self) -> str:
        times = ", ".join(
            f"{kind} {s.first:.4f}..{s.last:.4f} ({s.buffers})" for kind, s in self.sinks.items()
        )
        return (
            f"{self.playbin} {self.url}: rc {self.returncode}, {times}; demuxers "
            f"{'/'.join(self.demuxers)} (refused: {'/'.join(self.refused) or '-'}); "
            f"{len(self.timestamp_warnings)} timestamp warnings {list(self.timestamp_warnings[:3])}"
        )


def ensure_gst_installed() -> None:
    """Raise GstNotInstalledError naming what is missing (scripts/bootstrap.sh installs it)."""
    if shutil.which(GST_LAUNCH) is None:
        raise GstNotInstalledError(f"{GST_LAUNCH} not found: run scripts/bootstrap.sh")
    inspect = shutil.which("gst-inspect-1.0") or "gst-inspect-1.0"
    missing = [
        name
        for name in REQUIRED_ELEMENTS
        if subprocess.run([inspect, "--exists", name], check=False).returncode != 0
    ]
    if missing:
        raise GstNotInstalledError(f"GStreamer elements missing: {missing}: run bootstrap.sh")


def _seconds(text: str) -> float | None:
    match = re.match(_TIME, text)
    if match is None:  # 99:99:99.999999999 is GST_CLOCK_TIME_NONE
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def _is_timestamp_warning(category: str, message: str) -> bool:
    if "GstSoupSession" in message:
        return False
    return category in _TIMESTAMP_CATEGORIES or bool(_TIMESTAMP_WORDS.search(message))


def parse_log(lines: Iterable[str]) -> tuple[dict[str, SinkTimes], list[str], list[str],
                                             list[str], list[str]]:  # fmt: skip
    """(sinks, created, refused, timestamp warnings, errors) from a GST_DEBUG log."""
    segment: dict[str, tuple[float, float, float]] = {}  # sink: (start, rate, base)
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    count: dict[str, int] = {}
    created: list[str] = []
    refused: list[str] = []
    warnings: list[str] = []
    errors: list[str] = []
    for line in lines:
        if match := _SEGMENT.search(line):
            start, base = _seconds(match[2]), _seconds(match[4])
            segment[match[1]] = (start or 0.0, float(match[3]) or 1.0, base or 0.0)
        elif match := _TIMES.search(line):
            sink, start_text, end_text = match.groups()
            seg_start, rate, base = segment.get(sink, (0.0, 1.0, 0.0))
            begin, end = _seconds(start_text), _seconds(end_text)
            if begin is None:
                continue
            running = (begin - seg_start) / rate + base
            first.setdefault(sink, running)
            stop = (end - seg_start) / rate + base if end is not None else running
            last[sink] = max(last.get(sink, stop), stop)
            count[sink] = count.get(sink, 0) + 1
        elif match := _CREATED.search(line):
            created.append(match[1])
        elif match := _LEVEL.match(line):
            level, category, message = match.groups()
            if refusal := _REFUSED.search(message):
                refused.append(re.sub(r"-?\d+$", "", refusal[1]))
            if level == "ERROR":
                errors.append(f"{category}: {message}")
            if _is_timestamp_warning(category, message):
                warnings.append(f"{level} {category}: {message}")
    sinks = {SINKS[s]: SinkTimes(first[s], last[s], count[s]) for s in first}
    return sinks, created, refused, warnings, errors


def play_gst(
    url: str, playbin: str = "playbin3", timeout: float = 60, connection_kbps: int = 0
) -> GstPlayback:
    """Play `url` to the end with `playbin` (or `playbin3`) into fakesinks; see the module doc.

    `connection_kbps` > 0 sets playbin's `connection-speed`, which keeps an adaptive demuxer
    on the variants that fit (1: the lowest), so it never switches."""
    if playbin not in PLAYBINS:
        raise ValueError(f"playbin must be one of {PLAYBINS}, not {playbin!r}")
    ensure_gst_installed()
    env = dict(
        os.environ,
        GST_DEBUG="*:2,basesink:5,GST_ELEMENT_FACTORY:4",
        GST_DEBUG_NO_COLOR="1",
    )
    command = [
        GST_LAUNCH,
        playbin,
        *([f"connection-speed={connection_kbps}"] if connection_kbps > 0 else []),
        f"uri={url}",
        "video-sink=fakesink name=vs sync=false",
        "audio-sink=fakesink name=as sync=false",
    ]
    # A session of its own, so a hung pipeline is killed with every thread and child it has.
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate(timeout=_KILL_GRACE_S)
        raise GstTimeoutError(
            f"{playbin} {url} did not finish within {timeout:.0f} s (killed); log tail:\n"
            f"{output[-3000:]}"
        ) from None
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    sinks, created, refused, warnings, errors = parse_log(output.splitlines())
    demuxers = [name for name in created if name in DEMUXERS and name not in refused]
    return GstPlayback(
        url=url,
        playbin=playbin,
        returncode=process.returncode,
        sinks=sinks,
        demuxers=tuple(dict.fromkeys(demuxers)),
        refused=tuple(dict.fromkeys(refused)),
        timestamp_warnings=tuple(warnings),
        errors=tuple(errors),
        log_tail=output[-20000:],
    )
