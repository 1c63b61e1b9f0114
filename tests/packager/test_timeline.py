"""packager/timeline.py on real encoder output: one start instant, no sliver tail, cmfc."""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from packager.cmaf import FragmentSink, describe_track, list_segment_files, read_init
from packager.errors import MalformedSegmentError
from packager.fragments import read_fragment_samples, read_track_defaults
from packager.isobmff import find_box, iter_boxes
from packager.manifests import write_manifests
from packager.timeline import (
    add_cmaf_brand,
    align_presentation_starts,
    finish_tracks,
    merge_short_tail,
    presentation_start,
    shift_decode_times,
    start_at_first_frame,
)
from tests.packager.encode import encode_audio, encode_video

FPS = 30


def _video(folder: Path, seconds: float) -> Path:
    with FragmentSink(folder) as sink:
        encode_video(sink, 160, 120, seconds, fps=FPS, gop=60)
    return folder


def _audio(folder: Path, seconds: float) -> Path:
    with FragmentSink(folder) as sink:
        encode_audio(sink, seconds)
    return folder


def _trun_versions(folder: Path) -> set[int]:
    versions = set()
    for path in list_segment_files(folder):
        data = path.read_bytes()
        for moof in (b for b in iter_boxes(data) if b.type == "moof"):
            trun = find_box(moof.payload, "traf/trun")
            assert trun is not None
            versions.add(trun.payload[0])
    return versions


def test_video_uses_unsigned_offsets_and_presents_after_its_b_frame_delay(tmp_path: Path) -> None:
    video = _video(tmp_path / "v", 4)
    assert _trun_versions(video) == {0}
    start = presentation_start(video)
    # x264 veryfast: 3 B-frames, b-pyramid: the first frame presents 2 frames after decoding
    assert start.seconds == Fraction(2, FPS)
    assert describe_track(video, "v").first_presentation == start.ticks


def test_alignment_delays_audio_to_the_first_frame(tmp_path: Path) -> None:
    video, audio = _video(tmp_path / "v", 4), _audio(tmp_path / "a", 4)
    assert presentation_start(audio).ticks == 0
    before = [p.read_bytes() for p in list_segment_files(audio)]
    common = align_presentation_starts([video, audio])
    assert common == Fraction(2, FPS)
    assert presentation_start(audio).seconds == common == presentation_start(video).seconds
    track = describe_track(audio, "a")
    assert track.segments[0].start == 48_000 * 2 // FPS
    after = [p.read_bytes() for p in list_segment_files(audio)]
    # only the tfdt bytes changed: same sizes, same sample data
    assert [len(b) for b in before] == [len(a) for a in after]
    assert all(_mdat(b) == _mdat(a) for b, a in zip(before, after, strict=True))
    # aligning again moves nothing
    assert align_presentation_starts([video, audio]) == common
    assert [p.read_bytes() for p in list_segment_files(audio)] == after


def test_ffmpeg_reads_both_tracks_from_the_same_instant(tmp_path: Path) -> None:
    """The reader that shifted video by the B-frame delay (issue 13) now agrees."""
    video, audio = _video(tmp_path / "v", 4), _audio(tmp_path / "a", 4)
    finish_tracks([video], audio, 2.0)
    firsts = []
    for folder in (video, audio):
        joined = tmp_path / f"{folder.name}.mp4"
        joined.write_bytes(
            b"".join(p.read_bytes() for p in [folder / "init.mp4", *list_segment_files(folder)])
        )
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "frame=pts_time", "-of", "csv=p=0",
             "-read_intervals", "%+#1", str(joined)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        firsts.append(float(out.split()[0].strip(",")))
    assert firsts == [0.0, 0.0]


@pytest.mark.parametrize(
    ("seconds", "merged", "expected"),
    [
        (6.1, True, [2.0, 2.0, 2.1]),  # 3 frames left over
        (6.9, True, [2.0, 2.0, 2.9]),  # 27 frames: still less than half a segment
        (7.2, False, [2.0, 2.0, 2.0, 1.2]),  # a short last segment, but not a sliver
        (7.0, False, [2.0, 2.0, 2.0, 1.0]),  # exactly half a segment stays
        (6.0, False, [2.0, 2.0, 2.0]),
    ],
)
def test_a_tail_shorter_than_half_a_segment_joins_the_one_before(
    tmp_path: Path, seconds: float, merged: bool, expected: list[float]
) -> None:
    video = _video(tmp_path / "v", seconds)
    frames_before = describe_track(video, "v").duration
    assert merge_short_tail(video, 2.0) == merged
    track = describe_track(video, "v")
    assert [float(s.seconds(track.timescale)) for s in track.segments] == pytest.approx(expected)
    assert [p.name for p in list_segment_files(video)] == [
        f"{n:05d}.m4s" for n in range(1, len(expected) + 1)
    ]
    assert track.duration == frames_before == Fraction(round(seconds * FPS), FPS)
    # every segment still starts where the one before ends, and with a keyframe
    for a, b in zip(track.segments, track.segments[1:], strict=False):
        assert b.start == a.start + a.duration
    assert not merge_short_tail(video, 2.0)  # nothing left to merge


def test_merged_segment_is_valid_cmaf_for_ffmpeg(tmp_path: Path) -> None:
    video = _video(tmp_path / "v", 6.1)
    merge_short_tail(video, 2.0)
    last = list_segment_files(video)[-1]
    joined = tmp_path / "last.mp4"
    joined.write_bytes((video / "init.mp4").read_bytes() + last.read_bytes())
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(joined)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert out.stderr == ""
    assert int(out.stdout.strip().strip(",")) == 63


def test_audio_tail_merges_too(tmp_path: Path) -> None:
    audio = _audio(tmp_path / "a", 6.1)
    assert merge_short_tail(audio, 2.0)
    track = describe_track(audio, "a")
    durations = [float(s.seconds(track.timescale)) for s in track.segments]
    assert len(durations) == 3 and min(durations) >= 1.0 and sum(durations) >= 6.1


def test_cmaf_brand_is_added_once(tmp_path: Path) -> None:
    video = _video(tmp_path / "v", 2)
    init = (video / "init.mp4").read_bytes()
    assert b"cmfc" not in init[:32]
    add_cmaf_brand(video)
    add_cmaf_brand(video)
    branded = (video / "init.mp4").read_bytes()
    ftyp = next(iter_boxes(branded))
    brands = bytes(ftyp.payload[8:])
    assert [brands[i : i + 4] for i in range(0, len(brands), 4)].count(b"cmfc") == 1
    assert branded[ftyp.size :] == init[len(init) - (len(branded) - ftyp.size) :]
    assert describe_track(video, "v").codecs.startswith("avc1.")


def test_finished_tracks_start_together_at_zero(tmp_path: Path) -> None:
    video, audio = _video(tmp_path / "v", 6.1), _audio(tmp_path / "audio", 6.1)
    assert finish_tracks([video], audio, 2.0) == 0
    tracks = [describe_track(video, "v"), describe_track(audio, "audio")]
    assert [t.first_presentation for t in tracks] == [0, 0]
    assert tracks[0].presentation_duration == Fraction(183, FPS)  # every frame, shown in full
    write_manifests(tmp_path, tracks[:1], tracks[1])
    mpd = (tmp_path / "manifest.mpd").read_text()
    assert "presentationTimeOffset" not in mpd  # both start at 0: nothing to offset
    assert 'mediaPresentationDuration="PT6.1' in mpd
    assert "0.1" not in (video / "index.m3u8").read_text()  # no 0.1 s segment listed


def _frames(folder: Path) -> list[tuple[int, int, int]]:
    """(decode, presentation, duration) of every sample, in decode order."""
    init = (folder / "init.mp4").read_bytes()
    info = read_init(init)
    defaults = read_track_defaults(init, info.track_id)
    return [
        (s.decode_time, s.presentation_time, s.duration)
        for path in list_segment_files(folder)
        for s in read_fragment_samples(path.read_bytes(), info.track_id, defaults)
    ]


def test_start_at_first_frame_keeps_every_frame_and_its_spacing(tmp_path: Path) -> None:
    video = _video(tmp_path / "v", 6.1)
    before = _frames(video)
    delay = start_at_first_frame(video)
    assert delay == 2 * 512  # x264 veryfast: the IDR shown 2 frames (15360/30 ticks) late
    after = _frames(video)
    assert len(after) == len(before) == 183
    # every frame still shows, in the same order and spacing, `delay` earlier: the first at 0
    assert [p for _, p, _ in after] == [p - delay for _, p, _ in before]
    assert min(p for _, p, _ in after) == after[0][1] == after[0][0] == 0
    # decode times strictly increase, never after their frame shows; version 0 offsets
    decodes = [d for d, _, _ in after]
    assert all(a < b for a, b in itertools.pairwise(decodes))
    assert all(d <= p for d, p, _ in after)
    assert _trun_versions(video) == {0}
    # only the head of the first fragment is squeezed; after it, decode times are the
    # encoder's moved by the delay
    squeezed = [
        i for i, (a, b) in enumerate(zip(after, before, strict=True)) if a[0] != b[0] - delay
    ]
    assert squeezed and max(squeezed) < 8
    assert start_at_first_frame(video) == 0  # nothing left to do


def test_start_at_first_frame_plays_in_ffmpeg_without_warnings(tmp_path: Path) -> None:
    video = _video(tmp_path / "v", 6.1)
    start_at_first_frame(video)
    joined = tmp_path / "v.mp4"
    joined.write_bytes(
        b"".join(p.read_bytes() for p in [video / "init.mp4", *list_segment_files(video)])
    )
    out = subprocess.run(
        ["ffmpeg", "-v", "warning", "-i", str(joined), "-f", "framecrc", "-"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert out.stderr == ""
    frames = [line.split(",") for line in out.stdout.splitlines() if not line.startswith("#")]
    assert len(frames) == 183
    assert int(frames[0][2]) == 0


def test_shift_refuses_to_move_earlier_and_overflow(tmp_path: Path) -> None:
    audio = _audio(tmp_path / "a", 2)
    with pytest.raises(ValueError, match="later"):
        shift_decode_times(audio, -1)
    with pytest.raises(MalformedSegmentError, match="overflows"):
        shift_decode_times(audio, 1 << 64)


def _mdat(segment: bytes) -> bytes:
    return b"".join(bytes(b.payload) for b in iter_boxes(segment) if b.type == "mdat")


@pytest.mark.parametrize(("seconds", "segments"), [(6.1, 3), (7.0, 4), (7.02, 4), (6.9, 3)])
def test_audio_keeps_the_video_segment_count(tmp_path: Path, seconds: float, segments: int) -> None:
    """At 7.0 s the video's 1.0 s tail stays, while the audio's (cut every 2.0053 s) is
    0.98 s: the audio follows the video, not its own half-segment rule."""
    video, audio = _video(tmp_path / "v", seconds), _audio(tmp_path / "a", seconds)
    finish_tracks([video], audio, 2.0)
    assert len(list_segment_files(video)) == segments
    assert len(list_segment_files(audio)) == segments


@pytest.mark.parametrize("seconds", [2.0, 5.0, 6.0, 6.1])
def test_decode_timeline_keeps_its_length_and_no_frame_moves(
    tmp_path: Path, seconds: float
) -> None:
    """Whichever sample gives the delay back, every frame still shows exactly `delay` earlier
    and the decode durations add up to the time on screen."""
    video = _video(tmp_path / "v", seconds)
    before = _frames(video)
    delay = start_at_first_frame(video)
    after = _frames(video)
    assert [p for _, p, _ in after] == [p - delay for _, p, _ in before]
    assert sum(d for _, _, d in after) == round(seconds * FPS) * 512
    assert all(d <= p for d, p, _ in after)
    assert describe_track(video, "v").presentation_duration == Fraction(round(seconds * FPS), FPS)


def test_give_back_when_the_last_decoded_frame_is_the_last_shown() -> None:
    from packager.timeline import _give_back

    durations, offsets = [512, 512, 512], [0, 1024, 0]  # shown at 0, 1536, 1024: last not last
    _give_back(durations, offsets, 1024)
    assert (durations, offsets) == ([512, 512, 1536], [0, 1024, 0])
    durations, offsets = [512, 512, 512], [0, 0, 1024]  # shown at 0, 512, 2048: last is last
    _give_back(durations, offsets, 1024)
    assert (durations, offsets) == ([512, 1536, 512], [0, 0, 0])
