"""The player harness itself: a real Chromium plays a real CMAF folder, and can also fail.

The folder is made by Debian's ffmpeg here, not by our engine: it only has to look like the
engine's output (master.m3u8 + manifest.mpd at the top, one folder per rendition holding
init.mp4, 00001.m4s... and index.m3u8), so that the harness is proven before the engine is.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support import player
from tests.support.player import (
    MODES,
    PlaybackResult,
    PlayerHarnessError,
    PlayerNotInstalledError,
    ensure_player_installed,
    play,
)
from tests.support.static_server import StaticServer, content_type_for, parse_range

PLAY_TIMEOUT_S = 60
# A broken folder never plays; there is no need to wait the full timeout to see it.
BROKEN_TIMEOUT_S = 10


def _make_cmaf_output(outdir: Path) -> Path:
    """Two video renditions and one audio rendition, 6 s, 2 s segments, HLS v7 + DASH."""
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("no ffmpeg on PATH: `apt-get install -y ffmpeg`")
    outdir.mkdir(parents=True)
    for representation in range(3):
        (outdir / f"s{representation}").mkdir()
    command = [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        "-f", "lavfi", "-i", "testsrc2=s=360x640:r=30",
        "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000",
        "-t", "6",
        "-map", "0:v", "-map", "0:v", "-map", "1:a",
        "-s:v:1", "180x320",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "96k",
        "-f", "dash", "-seg_duration", "2", "-use_template", "1", "-use_timeline", "1",
        "-hls_playlist", "1",
        "-init_seg_name", "s$RepresentationID$/init.mp4",
        "-media_seg_name", "s$RepresentationID$/$Number%05d$.m4s",
        "-adaptation_sets", "id=0,streams=v id=1,streams=a",
        "manifest.mpd",
    ]  # fmt: skip
    subprocess.run(command, cwd=outdir, check=True, timeout=120)
    _move_media_playlists_into_rendition_folders(outdir)
    return outdir


def _move_media_playlists_into_rendition_folders(outdir: Path) -> None:
    """ffmpeg writes media_N.m3u8 at the top; the engine's layout has sN/index.m3u8."""
    master = (outdir / "master.m3u8").read_text()
    for media in sorted(outdir.glob("media_*.m3u8")):
        folder = "s" + media.stem.removeprefix("media_")
        text = media.read_text().replace(f'"{folder}/', '"').replace(f"\n{folder}/", "\n")
        (outdir / folder / "index.m3u8").write_text(text)
        media.unlink()
        master = master.replace(media.name, f"{folder}/index.m3u8")
    (outdir / "master.m3u8").write_text(master)


@pytest.fixture(scope="module")
def cmaf_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ensure_player_installed()  # An error, not a skip: a missing browser must be seen.
    return _make_cmaf_output(tmp_path_factory.mktemp("player") / "out")


@pytest.fixture
def broken_copy(cmaf_output: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(cmaf_output, tmp_path / "out"))


def test_fixture_has_the_engine_layout(cmaf_output: Path) -> None:
    master = (cmaf_output / "master.m3u8").read_text()
    assert "#EXT-X-VERSION:7" in master
    assert "#EXT-X-MEDIA:TYPE=AUDIO" in master
    assert "s0/index.m3u8" in master
    assert (cmaf_output / "manifest.mpd").is_file()
    for folder in ("s0", "s1", "s2"):
        names = {path.name for path in (cmaf_output / folder).iterdir()}
        assert {"init.mp4", "00001.m4s", "index.m3u8"} <= names
    assert '#EXT-X-MAP:URI="init.mp4"' in (cmaf_output / "s0" / "index.m3u8").read_text()


@pytest.mark.browser
@pytest.mark.parametrize("mode", MODES)
def test_chromium_plays_the_output(cmaf_output: Path, mode: str) -> None:
    result = play(cmaf_output, mode, timeout=PLAY_TIMEOUT_S)

    assert not result.failures(), result.summary()
    assert result.played and result.current_time > 2.0
    assert result.decoded_frames and result.decoded_frames > 0
    assert result.video_decoded_bytes and result.audio_decoded_bytes
    assert result.errors == []
    assert (result.video_width, result.video_height) in {(360, 640), (180, 320)}
    if mode != "native":  # Chromium's own HLS player tells the page nothing about renditions.
        sizes = {(level["width"], level["height"]) for level in result.levels}
        assert sizes == {(360, 640), (180, 320)}, result.summary()
        assert len(result.audio_tracks) == 1, result.summary()
    assert any(path.endswith(".m4s") for path in result.requests)


@pytest.mark.browser
@pytest.mark.parametrize("mode", MODES)
def test_missing_first_segments_do_not_play(broken_copy: Path, mode: str) -> None:
    for folder in ("s0", "s1"):
        (broken_copy / folder / "00001.m4s").unlink()

    result = play(broken_copy, mode, timeout=BROKEN_TIMEOUT_S)

    assert result.failures(), result.summary()
    assert not result.played or result.errors, result.summary()
    assert any(error.get("status") == 404 for error in result.errors), result.summary()


@pytest.mark.browser
@pytest.mark.parametrize("mode", MODES)
def test_corrupt_segment_is_reported(broken_copy: Path, mode: str) -> None:
    for folder in ("s0", "s1"):
        segment = broken_copy / folder / "00001.m4s"
        segment.write_bytes(b"\x00\x00\x00\x10moof" + bytes(range(256)) * 64)

    result = play(broken_copy, mode, timeout=BROKEN_TIMEOUT_S)

    assert result.failures(), result.summary()
    assert result.errors, result.summary()


def test_a_missing_browser_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlayerNotInstalledError, match="apt-get install -y chromium"):
        ensure_player_installed(chromium=tmp_path / "chromium")


def test_missing_player_libraries_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(player, "PLAYER_DIR", tmp_path)
    with pytest.raises(PlayerNotInstalledError, match=r"npm ci --prefix tests/player"):
        ensure_player_installed()


def test_play_result_reads_the_script_output() -> None:
    line = {
        "mode": "hlsjs", "src": "http://x/master.m3u8", "played": False, "currentTime": 0,
        "duration": None, "videoWidth": 0, "videoHeight": 0, "decodedFrames": 0,
        "droppedFrames": 0, "webkitVideoDecodedByteCount": 0, "webkitAudioDecodedByteCount": 0,
        "errors": [{"source": "hlsjs", "fatal": True, "details": "manifestLoadError"}],
        "levels": [], "audioTracks": [], "timedOut": False, "elapsedMs": 1500,
    }  # fmt: skip
    result = PlaybackResult.from_json(line)
    assert result.fatal_errors == line["errors"]
    assert result.elapsed_s == 1.5
    assert len(result.failures()) == 5


def test_play_result_reads_the_track_starts() -> None:
    line = {
        "mode": "shaka-hls", "src": "http://x/master.m3u8", "played": True, "currentTime": 2.1,
        "errors": [], "timedOut": False, "elapsedMs": 900,
        "sourceBuffers": [
            {"mimeType": 'audio/mp4; codecs="mp4a.40.2"', "kind": "audio", "firstStart": 0.001,
             "firstTimestampOffset": -0.065667, "buffered": [[0.001, 4.001]],
             "timestampOffset": -0.065667, "appendMode": "segments", "removed": False},
            {"mimeType": 'video/mp4; codecs="avc1.64000d"', "kind": "video", "firstStart": 0,
             "buffered": None, "removed": True},
            {"mimeType": 'video/mp4; codecs="avc1.64000d"', "kind": "video",
             "firstStart": 0.066666, "buffered": [[0.066666, 4.066666]], "removed": False},
        ],
        "videoBuffered": [[0.066666, 4.0]], "firstFrame": {"mediaTime": 0.066666},
    }  # fmt: skip
    result = PlaybackResult.from_json(line)
    assert result.track_start("video") == 0.066666  # the removed buffer does not count
    assert result.av_start_gap() == pytest.approx(0.065666)
    assert result.source_buffers[0].buffered == ((0.001, 4.001),)
    assert result.video_buffered == [(0.066666, 4.0)]
    assert result.first_frame_media_time == 0.066666


def test_native_has_no_track_starts() -> None:
    line = {"mode": "native", "src": "http://x/master.m3u8", "played": True, "currentTime": 2.1,
            "videoBuffered": [[0, 4]]}  # fmt: skip
    result = PlaybackResult.from_json(line)
    assert result.source_buffers == [] and result.first_frame_media_time is None
    with pytest.raises(PlayerHarnessError, match="0 attached video SourceBuffer"):
        result.av_start_gap()


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        ("bytes=0-99", 1000, (0, 99)),
        ("bytes=900-", 1000, (900, 999)),
        ("bytes=-100", 1000, (900, 999)),
        ("bytes=990-2000", 1000, (990, 999)),
        ("bytes=1000-", 1000, None),
        ("bytes=5-4", 1000, None),
        ("bytes=-0", 1000, None),
    ],
)
def test_parse_range(header: str, size: int, span: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == span


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-1", "bytes=-"])
def test_parse_range_refuses_what_it_does_not_serve(header: str) -> None:
    with pytest.raises(ValueError):
        parse_range(header, 1000)


def test_static_server_speaks_http_as_players_need(tmp_path: Path) -> None:
    (tmp_path / "s0").mkdir()
    (tmp_path / "s0" / "00001.m4s").write_bytes(bytes(range(256)))
    (tmp_path / "master.m3u8").write_text("#EXTM3U\n")
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    (mounted / "lib.js").write_text("1;")

    with StaticServer(tmp_path / "s0", {"/_player/": mounted}) as server:
        ranged = urllib.request.Request(server.url("00001.m4s"), headers={"Range": "bytes=10-19"})
        with urllib.request.urlopen(ranged) as response:
            assert response.status == 206
            assert response.headers["Content-Range"] == "bytes 10-19/256"
            assert response.headers["Content-Type"] == content_type_for(Path("x.m4s"))
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.read() == bytes(range(10, 20))
        with urllib.request.urlopen(server.url("_player/lib.js")) as response:
            assert response.headers["Content-Type"].startswith("text/javascript")
        for missing in ("", "_player/", "../master.m3u8", "%2e%2e/master.m3u8", "nope.m4s"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(server.url(missing))
            assert refused.value.code == 404, missing
        assert server.requests == ["/00001.m4s", "/_player/lib.js"]


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl"),
        ("manifest.mpd", "application/dash+xml"),
        ("init.mp4", "video/mp4"),
        ("00001.m4s", "video/iso.segment"),
        ("hls.min.js", "text/javascript; charset=utf-8"),
        ("captions.vtt", "text/vtt; charset=utf-8"),
        ("thumb.jpg", "image/jpeg"),
        ("player.html", "text/html; charset=utf-8"),
        ("blob.bin", "application/octet-stream"),
    ],
)
def test_content_types(name: str, content_type: str) -> None:
    assert content_type_for(Path(name)) == content_type
