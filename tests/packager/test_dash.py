"""DASH renderer (ISO/IEC 23009-1): parsed back with `mpegdash`, timeline compression."""

from __future__ import annotations

from fractions import Fraction

import pytest
from mpegdash.parser import MPEGDASHParser

from packager.dash import TimelineEntry, compress_timeline, format_duration, render_mpd
from packager.model import Segment
from tests.packager.tracks import LADDER, LADDER_AUDIO, VIDEO_ONLY


def timeline(*spans: tuple[int, int]) -> list[Segment]:
    return [Segment(n, start, duration, 1) for n, (start, duration) in enumerate(spans, start=1)]


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (timeline((0, 2)), [TimelineEntry(0, 2)]),
        (
            timeline((0, 2), (2, 2), (4, 2), (6, 1)),
            [TimelineEntry(0, 2, 2), TimelineEntry(None, 1)],
        ),
        (
            timeline((0, 2), (2, 3), (5, 2), (7, 2)),
            [TimelineEntry(0, 2), TimelineEntry(None, 3), TimelineEntry(None, 2, 1)],
        ),
        # a gap after the second segment restarts the run with an explicit t
        (
            timeline((0, 2), (2, 2), (5, 2), (7, 2)),
            [TimelineEntry(0, 2, 1), TimelineEntry(5, 2, 1)],
        ),
        (timeline((1024, 2), (1026, 2)), [TimelineEntry(1024, 2, 1)]),
        ([], []),
    ],
    ids=["one", "run-then-short", "no-runs-then-run", "gap", "offset-start", "empty"],
)
def test_compress_timeline(segments: list[Segment], expected: list[TimelineEntry]) -> None:
    assert compress_timeline(segments) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (Fraction(9009, 1000), "PT9.009S"),
        (Fraction(2), "PT2S"),
        (Fraction(96256, 48000), "PT2.006S"),  # rounded up, never down
        (Fraction(1, 3), "PT0.334S"),
        (Fraction(125), "PT125S"),
    ],
)
def test_format_duration(seconds: Fraction, text: str) -> None:
    assert format_duration(seconds) == text


def test_mpd_fields() -> None:
    mpd = MPEGDASHParser.parse(render_mpd(LADDER, LADDER_AUDIO))
    assert mpd.type == "static"
    assert "urn:mpeg:dash:profile:isoff-live:2011" in mpd.profiles.split(",")
    assert mpd.media_presentation_duration == "PT9.009S"
    assert mpd.min_buffer_time == "PT2.002S"  # the median segment
    (period,) = mpd.periods
    video_set, audio_set = period.adaptation_sets
    assert (video_set.mime_type, video_set.segment_alignment, video_set.start_with_sap) == (
        "video/mp4",
        True,
        1,
    )
    assert (video_set.max_width, video_set.max_height, video_set.max_frame_rate, video_set.par) == (
        1080,
        1920,
        "30000/1001",
        "9:16",
    )
    by_id = {t.id: t for t in LADDER}
    assert [r.id for r in video_set.representations] == ["v360", "v720", "v1080"]
    for representation in video_set.representations:
        track = by_id[representation.id]
        assert representation.bandwidth == track.delivery_bandwidth(Fraction(2002, 1000))
        assert (representation.codecs, representation.width, representation.height) == (
            track.codecs,
            track.width,
            track.height,
        )
        assert (representation.frame_rate, representation.sar) == ("30000/1001", "1:1")
        (template,) = representation.segment_templates
        assert (template.timescale, template.start_number) == (30000, 1)
        assert template.initialization == "$RepresentationID$/init.mp4"
        assert template.media == "$RepresentationID$/$Number%05d$.m4s"
        spans = [(s.t, s.d, s.r) for s in template.segment_timelines[0].Ss]
        assert spans == [(0, 60060, 3), (None, 30030, None)]
    assert (audio_set.mime_type, audio_set.lang) == ("audio/mp4", "eng")
    (channels,) = audio_set.audio_channel_configurations
    assert (channels.scheme_id_uri, channels.value) == (
        "urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
        "2",
    )
    (representation,) = audio_set.representations
    assert (representation.id, representation.codecs, representation.audio_sampling_rate) == (
        "audio",
        "mp4a.40.2",
        "48000",
    )
    assert representation.bandwidth == LADDER_AUDIO.delivery_bandwidth(Fraction(2002, 1000))


def test_timeline_covers_every_segment_file() -> None:
    for track in [*LADDER, LADDER_AUDIO]:
        entries = compress_timeline(track.segments)
        assert sum(e.r + 1 for e in entries) == len(track.segments)
        assert sum((e.r + 1) * e.d for e in entries) == sum(s.duration for s in track.segments)


def test_video_only_has_no_audio_set_and_integer_frame_rate() -> None:
    mpd = MPEGDASHParser.parse(render_mpd(VIDEO_ONLY, None))
    (video_set,) = mpd.periods[0].adaptation_sets
    assert (video_set.max_frame_rate, video_set.par) == ("30", "4:3")
    assert video_set.representations[0].frame_rate == "30"


def test_par_omitted_when_aspect_ratios_differ() -> None:
    text = render_mpd([LADDER[0], VIDEO_ONLY[0]], None)
    assert " par=" not in text
