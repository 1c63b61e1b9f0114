"""A real browser plays what `reelforge transcode` writes: hls.js, native HLS, dash.js, Shaka."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import JobResult
from tests.support.player import MODES, play

pytestmark = pytest.mark.browser

SOURCES = {
    # a generated portrait clip with stereo audio, and real footage with a rotation matrix
    "portrait": lambda generated, media: generated("portrait"),
    "rotate-buck-bunny": lambda generated, media: media / "rotate-buck-bunny.mp4",
    "cockatoo": lambda generated, media: media / "cockatoo.mp4",
    "cursed-vfr": lambda generated, media: media / "cursed-vfr.mp4",
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_browser_plays_output(
    source: str,
    mode: str,
    generated: Callable[[str], Path],
    media: Path,
    transcoded: Callable[[Path], JobResult],
) -> None:
    result = transcoded(SOURCES[source](generated, media))
    assert result.returncode == 0, result.stderr
    if result.report["source"]["duration"] < 2.5:
        until = result.report["source"]["duration"] * 0.8
    else:
        until = 2.0
    playback = play(result.outdir, mode, timeout=60, until=until)
    has_audio = result.report["ladder"]["audio"] is not None
    problems = [
        p for p in playback.failures(min_time=until * 0.99) if has_audio or "audio" not in p
    ]
    assert not problems, playback.summary()
    assert playback.decoded_frames > 0
    assert playback.video_decoded_bytes > 0
    if has_audio:
        assert playback.audio_decoded_bytes > 0, playback.summary()
    assert playback.video_width > 0 and playback.video_height > 0
    source_info = result.report["source"]
    portrait = source_info["display_height"] > source_info["display_width"]
    assert (playback.video_height > playback.video_width) == portrait
