"""The packager's output played by real players in Chromium: hls.js, native HLS, dash.js, Shaka
(DASH and HLS).

Two video renditions and one audio track, 6 s, produced by the same path the engine uses
(PyAV -> FragmentSink -> finish_tracks -> describe_track -> write_manifests).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from packager.cmaf import FragmentSink, describe_track
from packager.manifests import write_manifests
from packager.timeline import finish_tracks
from tests.packager.encode import encode_audio, encode_video
from tests.support.player import MODES, ensure_player_installed, play

SECONDS = 6
RENDITIONS = {"v240": (320, 240), "v120": (160, 120)}


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_player_installed()  # an error, not a skip: a missing browser must be seen
    root = tmp_path_factory.mktemp("playback")
    for track_id, (width, height) in RENDITIONS.items():
        with FragmentSink(root / track_id) as sink:
            encode_video(sink, width, height, SECONDS)
    with FragmentSink(root / "audio") as sink:
        encode_audio(sink, SECONDS)
    finish_tracks([root / track_id for track_id in RENDITIONS], root / "audio", 2.0)
    video_tracks = [describe_track(root / track_id, track_id) for track_id in RENDITIONS]
    write_manifests(root, video_tracks, describe_track(root / "audio", "audio"))
    return root


@pytest.mark.browser
@pytest.mark.parametrize("mode", MODES)
def test_plays_with_audio_past_the_first_segment(outdir: Path, mode: str) -> None:
    result = play(outdir, mode, timeout=60, until=4.0)
    assert not result.failures(min_time=4.0), result.summary()
    assert result.video_width in (320, 160)
    assert result.audio_decoded_bytes, result.summary()
    assert result.duration is not None and abs(result.duration - SECONDS) < 0.1
