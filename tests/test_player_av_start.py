"""Video and audio start together in Chromium's MSE players (issue 13).

A 30 fps clip with x264 B-frames and audio (tests/support/timing_clips.py `plain`) goes
through `reelforge transcode`; hls.js, dash.js and Shaka (DASH and HLS) play it, and the
harness reads where each SourceBuffer's first media landed on the element's timeline (W3C
Media Source Extensions §3.5.8: a frame is placed at its presentation timestamp +
timestampOffset). The first video and audio starts must agree within one frame. Native HLS
has no SourceBuffers and is not measured per track (tests/support/player.py).

The last test proves the measurement sees a desync: the audio `tfdt` (ISO/IEC 14496-12
§8.8.12) of a copy is moved 5 frames later and DASH's SegmentTimeline with it, and dash.js
must then report the audio starting 5 frames after the video.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import JobResult
from tests.support import timing_clips
from tests.support.player import MSE_MODES, play
from tests.support.retime import shift_tfdt

pytestmark = pytest.mark.browser

RATE = 30
SHAPE = timing_clips.plain(RATE, 4.0)
FRAME_S = 1 / RATE
UNTIL_S = 2.0


@pytest.fixture(scope="module")
def output(clip_dir: Path, transcoded: Callable[[Path], JobResult]) -> Path:
    result = transcoded(timing_clips.build(SHAPE, clip_dir))
    assert result.returncode == 0, result.stderr
    assert result.report["ladder"]["audio"] is not None, "the clip must have audio"
    return result.outdir


@pytest.mark.parametrize("mode", MSE_MODES)
def test_video_and_audio_start_within_a_frame(output: Path, mode: str) -> None:
    playback = play(output, mode, timeout=60, until=UNTIL_S)

    assert playback.played and playback.current_time > UNTIL_S, playback.summary()
    assert not playback.fatal_errors, playback.summary()
    kinds = sorted(b.kind for b in playback.source_buffers if not b.removed)
    assert kinds == ["audio", "video"], playback.summary()
    gap = playback.av_start_gap()
    assert abs(gap) <= FRAME_S + 1e-6, (
        f"{mode}: video starts at {playback.track_start('video'):.6f} s, audio at "
        f"{playback.track_start('audio'):.6f} s ({gap * 1000:+.1f} ms)\n{playback.summary()}"
    )


def test_native_reports_what_it_can(output: Path) -> None:
    playback = play(output, "native", timeout=60, until=UNTIL_S)

    assert playback.played, playback.summary()
    assert playback.source_buffers == []
    assert playback.video_buffered and playback.video_buffered[0][0] <= FRAME_S
    assert playback.first_frame_media_time is not None


def test_the_measurement_sees_audio_moved_late(output: Path, tmp_path: Path) -> None:
    late = Path(shutil.copytree(output, tmp_path / "late"))
    mpd = (late / "manifest.mpd").read_text()
    timescale = re.search(r'contentType="audio".*?timescale="(\d+)"', mpd, re.S)
    assert timescale, mpd
    ticks = round(5 * FRAME_S * int(timescale.group(1)))
    for segment in sorted((late / "audio").glob("*.m4s")):
        shift_tfdt(segment, ticks)
    head, audio_set = mpd.split('contentType="audio"', 1)
    audio_set = re.sub(
        r'<S t="(\d+)"', lambda m: f'<S t="{int(m.group(1)) + ticks}"', audio_set, count=1
    )
    (late / "manifest.mpd").write_text(head + 'contentType="audio"' + audio_set)

    playback = play(late, "dashjs", timeout=60, until=UNTIL_S)

    assert playback.played, playback.summary()
    assert playback.av_start_gap() == pytest.approx(-5 * FRAME_S, abs=FRAME_S / 2), (
        playback.summary()
    )
