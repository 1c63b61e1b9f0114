"""A generated clip through PyAV -> FragmentSink -> describe_track -> write_manifests.

Proves the muxer options give one fragment per GOP for video and ~2 s fragments for audio, that
the measured Tracks match what was encoded, and that FFmpeg decodes both manifests cleanly.
"""

from __future__ import annotations

import io
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from packager.cmaf import FragmentSink, describe_track
from packager.manifests import write_manifests
from packager.model import Track
from tests.packager.encode import encode_audio, encode_video, sps_profile_level

FPS, GOP, SECONDS, RATE = 30, 60, 3, 48000
WIDTH, HEIGHT = 320, 240


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Track, Track, bytes]:
    """Encode once per module: (outdir, video track, audio track, encoder extradata)."""
    outdir = tmp_path_factory.mktemp("job")
    with FragmentSink(outdir / "v240") as sink:
        avcc = encode_video(sink, WIDTH, HEIGHT, SECONDS, fps=FPS, gop=GOP)
    with FragmentSink(outdir / "audio") as sink:
        encode_audio(sink, SECONDS, rate=RATE)
    video = describe_track(outdir / "v240", "v240")
    audio = describe_track(outdir / "audio", "audio")
    write_manifests(outdir, [video], audio)
    return outdir, video, audio, avcc


def test_files_on_disk(job: tuple[Path, Track, Track, bytes]) -> None:
    outdir = job[0]
    names = {p.relative_to(outdir).as_posix() for p in outdir.rglob("*") if p.is_file()}
    assert names == {
        "master.m3u8",
        "manifest.mpd",
        "v240/init.mp4",
        "v240/00001.m4s",
        "v240/00002.m4s",
        "v240/index.m3u8",
        "audio/init.mp4",
        "audio/00001.m4s",
        "audio/00002.m4s",
        "audio/index.m3u8",
    }


def test_video_track_measured(job: tuple[Path, Track, Track, bytes]) -> None:
    outdir, video, _, avcc = job
    assert video.kind == "video"
    assert video.codecs == "avc1." + sps_profile_level(avcc).hex()
    assert (video.width, video.height, video.frame_rate) == (WIDTH, HEIGHT, Fraction(FPS))
    # one fragment per GOP: 2 s segments, the last one shorter
    assert [s.seconds(video.timescale) for s in video.segments] == [2, 1]
    assert [s.number for s in video.segments] == [1, 2]
    assert [s.size for s in video.segments] == [
        (outdir / "v240" / f"{s.number:05d}.m4s").stat().st_size for s in video.segments
    ]


def test_every_video_segment_starts_with_a_keyframe(job: tuple[Path, Track, Track, bytes]) -> None:
    outdir = job[0] / "v240"
    init = (outdir / "init.mp4").read_bytes()
    for path in sorted(outdir.glob("*.m4s")):
        with av.open(io.BytesIO(init + path.read_bytes()), "r", format="mp4") as container:
            first = next(container.demux(container.streams.video[0]))
            assert first.is_keyframe, path.name


def test_audio_track_measured(job: tuple[Path, Track, Track, bytes]) -> None:
    _, _, audio, _ = job
    assert (audio.kind, audio.codecs, audio.timescale) == ("audio", "mp4a.40.2", RATE)
    assert (audio.sample_rate, audio.channels) == (RATE, 2)
    # frag_duration cuts at the first AAC frame at or past 2 s: 94 frames of 1024 samples
    assert audio.segments[0].duration == 94 * 1024
    assert audio.segments[-1].duration < 94 * 1024
    # every sample plus the encoder's 1024-sample priming: the last packet's duration is trimmed
    assert audio.duration == Fraction(RATE * SECONDS + 1024, RATE)


def test_segments_are_contiguous(job: tuple[Path, Track, Track, bytes]) -> None:
    for track in job[1:3]:
        assert isinstance(track, Track)
        assert track.segments[0].start == track.first_presentation
        for before, after in zip(track.segments, track.segments[1:], strict=False):
            assert after.start == before.start + before.duration


@pytest.mark.parametrize("manifest", ["master.m3u8", "manifest.mpd"])
def test_ffmpeg_decodes_manifest_without_errors(
    job: tuple[Path, Track, Track, bytes], manifest: str
) -> None:
    # An absolute path: FFmpeg 5.1's dash demuxer resolves relative MPD paths twice.
    path = (job[0] / manifest).resolve()
    result = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("manifest", ["master.m3u8", "manifest.mpd"])
def test_ffprobe_counts_every_frame(job: tuple[Path, Track, Track, bytes], manifest: str) -> None:
    path = (job[0] / manifest).resolve()
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,codec_name,width,height",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split()[0] == f"h264,{WIDTH},{HEIGHT},{FPS * SECONDS}"
