"""HLS renderers (RFC 8216): parsed back with the `m3u8` library, rules checked one by one."""

from __future__ import annotations

from fractions import Fraction

import m3u8
import pytest

from packager.errors import PackagerError
from packager.hls import format_decimal, render_master, render_media_playlist, target_duration
from packager.model import Segment, Track
from tests.packager.tracks import LADDER, LADDER_AUDIO, VIDEO_ONLY, audio, segments, video


def with_durations(durations: list[int], timescale: int = 1_000_000) -> Track:
    return Track(
        id="v1",
        kind="video",
        codecs="avc1.64001f",
        timescale=timescale,
        segments=segments(durations, [1000] * len(durations)),
        init_size=1,
    )


@pytest.mark.parametrize(
    ("durations", "timescale", "expected"),
    [
        ([2_000_000, 2_000_000, 1_000_000], 1_000_000, 2),
        ([2_002_000, 2_002_000], 1_000_000, 2),
        ([2_499_999, 2_000_000], 1_000_000, 2),
        ([2_500_000], 1_000_000, 3),  # exactly half rounds up, so the rounded EXTINF still fits
        ([24_999_997], 10_000_000, 3),  # 2.4999997 s is written 2.500000: what players round
        ([6_000_000, 6_600_000, 1_000], 1_000_000, 7),
        ([300_000, 200_000], 1_000_000, 1),  # never 0
    ],
)
def test_target_duration_is_the_largest_rounded_extinf(
    durations: list[int], timescale: int, expected: int
) -> None:
    track = with_durations(durations, timescale)
    assert target_duration(track) == expected
    parsed = m3u8.loads(render_media_playlist(track))
    assert parsed.target_duration == expected
    assert all(round(s.duration + 1e-9) <= expected for s in parsed.segments)


@pytest.mark.parametrize(
    ("value", "places", "text"),
    [
        (Fraction(60060, 30000), 6, "2.002000"),
        (Fraction(96256, 48000), 6, "2.005333"),
        (Fraction(1, 3), 6, "0.333333"),
        (Fraction(2, 3), 6, "0.666667"),
        (Fraction(30000, 1001), 3, "29.970"),
        (Fraction(24000, 1001), 3, "23.976"),
        (Fraction(5, 2), 0, "2"),
    ],
)
def test_format_decimal(value: Fraction, places: int, text: str) -> None:
    assert format_decimal(value, places) == text


def test_media_playlist_fields() -> None:
    track = LADDER[1]
    parsed = m3u8.loads(render_media_playlist(track))
    assert parsed.version == 7
    assert parsed.media_sequence == 1 == track.segments[0].number
    assert parsed.playlist_type == "vod" and parsed.is_endlist and parsed.is_independent_segments
    assert parsed.segment_map[0].uri == "init.mp4"
    assert [s.uri for s in parsed.segments] == [f"{n:05d}.m4s" for n in range(1, 6)]
    assert [s.duration for s in parsed.segments] == [2.002] * 4 + [1.001]


def test_media_sequence_follows_first_file_number() -> None:
    track = with_durations([2_000_000, 2_000_000])
    shifted = Track(
        id="v1",
        kind="video",
        codecs="avc1.64001f",
        timescale=1_000_000,
        segments=tuple(Segment(s.number + 4, s.start, s.duration, s.size) for s in track.segments),
        init_size=1,
    )
    parsed = m3u8.loads(render_media_playlist(shifted))
    assert parsed.media_sequence == 5
    assert parsed.segments[0].uri == "00005.m4s"


def test_master_with_audio() -> None:
    parsed = m3u8.loads(render_master(LADDER, LADDER_AUDIO))
    assert parsed.version == 7 and parsed.is_independent_segments
    (media,) = parsed.media
    assert (media.type, media.group_id, media.default, media.autoselect) == (
        "AUDIO",
        "aud",
        "YES",
        "YES",
    )
    assert (media.channels, media.uri, media.language) == ("2", "audio/index.m3u8", "eng")
    infos = [p.stream_info for p in parsed.playlists]
    assert [p.uri for p in parsed.playlists] == [
        "v360/index.m3u8",
        "v720/index.m3u8",
        "v1080/index.m3u8",
    ]
    assert [i.bandwidth for i in infos] == sorted(i.bandwidth for i in infos)
    by_id = {t.id: t for t in LADDER}
    for playlist in parsed.playlists:
        track = by_id[playlist.uri.split("/")[0]]
        info = playlist.stream_info
        assert info.bandwidth == track.peak_bandwidth + LADDER_AUDIO.peak_bandwidth
        assert info.average_bandwidth == (track.average_bandwidth + LADDER_AUDIO.average_bandwidth)
        assert info.codecs == f"{track.codecs},mp4a.40.2"
        assert info.resolution == (track.width, track.height)
        assert info.frame_rate == 29.97
        assert info.audio == "aud"


def test_master_without_audio() -> None:
    parsed = m3u8.loads(render_master(VIDEO_ONLY, None))
    assert not parsed.media
    (playlist,) = parsed.playlists
    info = playlist.stream_info
    assert info.bandwidth == VIDEO_ONLY[0].peak_bandwidth
    assert info.codecs == "avc1.64001f" and info.audio is None and info.frame_rate == 30.0


def test_audio_without_language_or_channel_count() -> None:
    text = render_master(VIDEO_ONLY, audio([1000, 500], channels=0))
    assert "LANGUAGE=" not in text and "CHANNELS=" not in text


@pytest.mark.parametrize(
    ("video_tracks", "audio_track", "message"),
    [
        ([], LADDER_AUDIO, "at least one video"),
        ([LADDER[0], LADDER[0]], None, "not unique"),
        ([video("../v1", 320, 240, [1])], None, "not a safe"),
        ([with_durations([])], None, "no segments"),
        ([LADDER_AUDIO], None, "must all be video"),
        (VIDEO_ONLY, LADDER[0], "audio must be audio"),
    ],
)
def test_master_refuses_bad_presentations(
    video_tracks: list[Track], audio_track: Track | None, message: str
) -> None:
    with pytest.raises(PackagerError, match=message):
        render_master(video_tracks, audio_track)
