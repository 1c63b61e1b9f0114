"""Issue 13: players nobody here wrote present our outputs in sync and to the end.

FFmpeg (Debian's 5.1 and 9) and GStreamer 1.22 (`playbin`, whose decodebin2 falls back to the
legacy hlsdemux/dashdemux, and `playbin3` with hlsdemux2/dashdemux2) read master.m3u8
(RFC 8216) and manifest.mpd (ISO/IEC 23009-1) over HTTP from a loopback origin. The first
video and the first audio presentation each client reports must agree within one frame
(ITU-R BT.1359 puts audio leading by ~45 ms at noticeable). A CMAF video track with signed
composition offsets and no edit list fails this: FFmpeg's and GStreamer's MP4 demuxers delay
its video by the B-frame delay (2 frames). The sync clips (timing_clips.SYNC_SHAPES) carry each
frame's index in the picture and a beep when a known frame shows, and end in a short GOP.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JobResult, media_files
from tests.support.ffmpeg_players import FFMPEG_PLAYERS, play_ffmpeg
from tests.support.ffprobe import joined_rendition
from tests.support.frames import AUDIO_ONLY
from tests.support.gst import PLAYBINS, play_gst
from tests.support.static_server import StaticServer
from tests.support.timing_clips import SYNC_SHAPES, Shape, beep_onset, build, decoded_video

SYNC = {shape.name: shape for shape in SYNC_SHAPES}
MANIFESTS = {"hls": "master.m3u8", "dash": "manifest.mpd"}
CLIENTS = (*FFMPEG_PLAYERS, *PLAYBINS)
REAL_WITH_VIDEO = [name for name in media_files() if name not in AUDIO_ONLY]
GST_TIMEOUT_S = 90.0
SLACK_S = 0.001  # rounding of the times the clients print


def first_times(client: str, url: str) -> tuple[float, float, list[str]]:
    """(first video, first audio presentation time, timestamp warnings) as `client` plays."""
    if client in FFMPEG_PLAYERS:
        ff = play_ffmpeg(client, url)
        return ff.first["video"], ff.first["audio"], list(ff.timestamp_warnings)
    gst = play_gst(url, client, timeout=GST_TIMEOUT_S)
    assert gst.reached_eos, gst.summary() + "\n" + gst.log_tail[-3000:]
    return gst.first("video"), gst.first("audio"), list(gst.timestamp_warnings)


def _source(name: str, media: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real clip, or a sync clip built once per session (so `transcoded` runs it once)."""
    if name not in SYNC:
        return media / name
    return build(SYNC[name], tmp_path_factory.getbasetemp() / "sync-clips")


HLSDEMUX2_RACE = "Can't push EOS on non-exposed pad"


def _video_duration(report: dict[str, Any]) -> float:
    """Every rung lasts the same; the first one listed."""
    return float(next(r["duration"] for n, r in report["renditions"].items() if n != "audio"))


@pytest.fixture(scope="module")
def sync_output(
    media: Path,
    tmp_path_factory: pytest.TempPathFactory,
    transcoded: Callable[[Path], JobResult],
) -> Callable[[str], JobResult]:
    def output(name: str) -> JobResult:
        result = transcoded(_source(name, media, tmp_path_factory))
        assert result.returncode == 0, result.stderr
        return result

    return output


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("protocol", sorted(MANIFESTS))
@pytest.mark.parametrize("name", sorted(SYNC))
def test_first_video_and_audio_agree(
    name: str, protocol: str, client: str, sync_output: Callable[[str], JobResult]
) -> None:
    shape = SYNC[name]
    result = sync_output(name)
    with StaticServer(result.outdir) as server:
        video, audio, _ = first_times(client, server.url(MANIFESTS[protocol]))
    frame = 1 / shape.peak_rate
    assert abs(video - audio) <= frame + SLACK_S, (
        f"{client} over {protocol}: first video {video:.4f} s, first audio {audio:.4f} s: "
        f"video {(video - audio) * shape.peak_rate:+.1f} frames behind audio"
    )


@pytest.mark.parametrize("player", FFMPEG_PLAYERS)
@pytest.mark.parametrize("protocol", sorted(MANIFESTS))
@pytest.mark.parametrize("name", sorted(SYNC))
def test_ffmpeg_reads_every_frame_in_order(
    name: str, protocol: str, player: str, sync_output: Callable[[str], JobResult]
) -> None:
    """Every frame once, times increasing, no timestamp warning (issue 13: FFmpeg's DASH
    demuxer restarted its B-frame shift in a last segment without B-frames)."""
    shape = SYNC[name]
    result = sync_output(name)
    with StaticServer(result.outdir) as server:
        played = play_ffmpeg(player, server.url(MANIFESTS[protocol]))
    assert not played.timestamp_warnings, played.summary()
    assert not played.backward_steps(), played.summary()
    assert len(played.video_times) == shape.frame_count, played.summary()


def _beep_against_its_frame(shape: Shape, outdir: Path) -> tuple[float, float, float]:
    """(first video time, time the beep frame shows, beep onset), read with FFmpeg's mov
    demuxer (PyAV) from the smallest rendition and the audio, each joined into one file,
    with no shift applied: what an FFmpeg-based player presents."""
    rungs = sorted(
        (p for p in outdir.iterdir() if p.is_dir() and p.name.startswith("v")),
        key=lambda p: int(p.name[1:]),
    )
    with joined_rendition(rungs[0]) as video_file:
        frames = list(decoded_video(video_file))
    with joined_rendition(outdir / "audio") as audio_file:
        onset, _ = beep_onset(audio_file)
    assert onset is not None, "no beep in the audio"
    shown = next(t for t, _, code in frames if code >= shape.beep_frame)
    return frames[0][0], shown, onset


@pytest.mark.parametrize("name", sorted(SYNC))
def test_beep_sounds_with_its_frame(name: str, sync_output: Callable[[str], JobResult]) -> None:
    shape = SYNC[name]
    first_video, shown, onset = _beep_against_its_frame(shape, sync_output(name).outdir)
    frame = 1 / shape.peak_rate
    assert abs(onset - shown) <= frame + SLACK_S, (
        f"beep at {onset:.4f} s, frame {shape.beep_frame} shown at {shown:.4f} s "
        f"(first video frame at {first_video:.4f} s): audio {(onset - shown) * 1000:+.1f} ms"
    )


@pytest.mark.slow
@pytest.mark.parametrize("playbin", PLAYBINS)
@pytest.mark.parametrize("protocol", sorted(MANIFESTS))
@pytest.mark.parametrize("name", [*REAL_WITH_VIDEO, *sorted(SYNC)])
def test_gstreamer_plays_to_the_end(
    name: str,
    protocol: str,
    playbin: str,
    media: Path,
    tmp_path_factory: pytest.TempPathFactory,
    transcoded: Callable[[Path], JobResult],
) -> None:
    """Every track from its start to its end, with no timestamp warning on the way."""
    result = transcoded(_source(name, media, tmp_path_factory))
    assert result.returncode == 0, result.stderr
    report = result.report
    frame = 1 / float(Fraction(report["output"]["frame_rate"]))
    # The legacy hlsdemux (`playbin`) never sends EOS when its last fragment arrives while it
    # switches variant ("Stream is EOS, but we're switching fragments. Not sending."): on a
    # two-segment presentation (0.ts) that is every run. It stays on the lowest variant here.
    kbps = 1 if (protocol, playbin) == ("hls", "playbin") else 0
    with StaticServer(result.outdir) as server:
        url = server.url(MANIFESTS[protocol])
        played = play_gst(url, playbin, timeout=GST_TIMEOUT_S, connection_kbps=kbps)
        # GStreamer 1.22's hlsdemux2 races on a playlist of one segment: the fragment is
        # downloaded before the pad is exposed, it logs "Can't push EOS on non-exposed pad"
        # and gives up ("Couldn't download fragments") - on main's output as on this one,
        # about 4 runs in 10 here. Only that signature is played again, at most 5 times.
        for _ in range(4):
            if played.reached_eos or not any(HLSDEMUX2_RACE in e for e in played.errors):
                break
            played = play_gst(url, playbin, timeout=GST_TIMEOUT_S, connection_kbps=kbps)
    summary = played.summary()
    assert played.reached_eos, summary + "\n" + played.log_tail[-3000:]
    assert not played.timestamp_warnings, summary
    expected_sinks = {"video", "audio"} if report["ladder"]["audio"] is not None else {"video"}
    assert set(played.sinks) == expected_sinks, summary
    durations = {"video": _video_duration(report)}
    if "audio" in report["renditions"]:
        durations["audio"] = float(report["renditions"]["audio"]["duration"])
    # HLS has no presentationTimeOffset: a presentation may start at its first timestamp
    # (RFC 8216 §6.2.4 leaves it to the client), so times count from the earliest track.
    start = min(times.first for times in played.sinks.values())
    for kind, times in played.sinks.items():
        assert times.first - start <= frame + SLACK_S, f"{kind} starts late: {summary}"
        assert abs(times.last - start - durations[kind]) <= frame + SLACK_S, (
            f"{kind} ends at {times.last - start:.4f} s from the start, the track lasts "
            f"{durations[kind]:.4f} s: {summary}"
        )
