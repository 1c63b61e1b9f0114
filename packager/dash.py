"""The DASH MPD (ISO/IEC 23009-1) rendered from measured tracks: pure, deterministic XML.

A static MPD with one Period, a video and an optional audio AdaptationSet. Each Representation
addresses the same CMAF files as the HLS playlists through a SegmentTemplate with
$RepresentationID$ (the track folder) and $Number%05d$ (the segment file), and a SegmentTimeline
holding the measured durations.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from packager.model import INIT_NAME, Segment, Track, check_presentation, order_variants

MPD_NAMESPACE = "urn:mpeg:dash:schema:mpd:2011"
# isoff-live (§8.4) for the SegmentTemplate addressing, CMAF (§8.12) for the segment format.
PROFILES = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"
CHANNEL_SCHEME = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
INITIALIZATION = f"$RepresentationID$/{INIT_NAME}"
MEDIA = "$RepresentationID$/$Number%05d$.m4s"  # must match model.segment_name


def format_duration(seconds: Fraction) -> str:
    """xs:duration (XML Schema Part 2 §3.2.6), rounded up to the millisecond: PT63.021S."""
    millis = math.ceil(seconds * 1000)
    whole, frac = divmod(millis, 1000)
    return f"PT{whole}.{frac:03d}S".replace(".000S", "S")


def format_frame_rate(rate: Fraction) -> str:
    """FrameRateType (§5.3.12.2): "30" or "30000/1001"."""
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


@dataclass(slots=True)
class TimelineEntry:
    """One `S` element: `t` only where the timeline does not simply continue."""

    t: int | None
    d: int
    r: int = 0


def compress_timeline(segments: Sequence[Segment]) -> list[TimelineEntry]:
    """Run-length encode segment times into `S` elements (ISO/IEC 23009-1 §5.3.9.6).

    Consecutive segments with the same duration that start where the previous one ended share
    one `S` with `r` repeats. `t` is written on the first `S` and after any gap or overlap.
    """
    entries: list[TimelineEntry] = []
    expected: int | None = None
    for segment in segments:
        continues = segment.start == expected
        if continues and entries and entries[-1].d == segment.duration:
            entries[-1].r += 1
        else:
            entries.append(TimelineEntry(None if continues else segment.start, segment.duration))
        expected = segment.start + segment.duration
    return entries


def _segment_template(parent: ET.Element, track: Track) -> None:
    """SegmentTemplate (§5.3.9.4) with a SegmentTimeline (§5.3.9.6).

    `@presentationTimeOffset` (§5.3.9.2) is the track's first presentation time, so the
    Period starts at its first frame; packager/timeline.py makes it the same instant for
    every track."""
    attributes = {
        "timescale": str(track.timescale),
        "initialization": INITIALIZATION,
        "media": MEDIA,
        "startNumber": str(track.segments[0].number),
    }
    if track.first_presentation:
        attributes["presentationTimeOffset"] = str(track.first_presentation)
    template = ET.SubElement(parent, "SegmentTemplate", attributes)
    timeline = ET.SubElement(template, "SegmentTimeline")
    for entry in compress_timeline(track.segments):
        attributes = {"t": str(entry.t)} if entry.t is not None else {}
        attributes["d"] = str(entry.d)
        if entry.r:
            attributes["r"] = str(entry.r)
        ET.SubElement(timeline, "S", attributes)


def _picture_aspect(video_tracks: Sequence[Track]) -> str | None:
    ratios = {Fraction(t.width, t.height) for t in video_tracks if t.width and t.height}
    if len(ratios) != 1:
        return None
    (ratio,) = ratios
    return f"{ratio.numerator}:{ratio.denominator}"


def min_buffer_time(video_tracks: Sequence[Track]) -> Fraction:
    """`MPD@minBufferTime` (§5.3.1.2): the median video segment duration, rounded up to the
    millisecond as written. Every `@bandwidth` is computed for this exact value."""
    durations = sorted(s.seconds(t.timescale) for t in video_tracks for s in t.segments)
    median = durations[len(durations) // 2]
    return Fraction(math.ceil(median * 1000), 1000)


def _video_set(period: ET.Element, video_tracks: Sequence[Track], buffer: Fraction) -> None:
    """The video AdaptationSet (§5.3.3) with one Representation (§5.3.5) per track."""
    attributes = {
        "id": "0",
        "contentType": "video",
        "mimeType": "video/mp4",
        "segmentAlignment": "true",
        "startWithSAP": "1",
        "maxWidth": str(max(t.width for t in video_tracks)),
        "maxHeight": str(max(t.height for t in video_tracks)),
        "maxFrameRate": format_frame_rate(max(t.frame_rate for t in video_tracks)),
    }
    if par := _picture_aspect(video_tracks):
        attributes["par"] = par
    adaptation = ET.SubElement(period, "AdaptationSet", attributes)
    for track in order_variants(video_tracks):
        representation = ET.SubElement(
            adaptation,
            "Representation",
            {
                "id": track.id,
                "bandwidth": str(track.delivery_bandwidth(buffer)),
                "codecs": track.codecs,
                "width": str(track.width),
                "height": str(track.height),
                "frameRate": format_frame_rate(track.frame_rate),
                "sar": "1:1",
            },
        )
        _segment_template(representation, track)


def _audio_set(period: ET.Element, audio: Track, buffer: Fraction) -> None:
    """The audio AdaptationSet, with its channel layout (ISO/IEC 23001-8 ChannelConfiguration)."""
    adaptation = ET.SubElement(
        period,
        "AdaptationSet",
        {
            "id": "1",
            "contentType": "audio",
            "mimeType": "audio/mp4",
            "lang": audio.language,
            "segmentAlignment": "true",
            "startWithSAP": "1",
        },
    )
    if audio.channels:
        ET.SubElement(
            adaptation,
            "AudioChannelConfiguration",
            {
                "schemeIdUri": CHANNEL_SCHEME,
                "value": str(audio.channels),
            },
        )
    attributes = {
        "id": audio.id,
        "bandwidth": str(audio.delivery_bandwidth(buffer)),
        "codecs": audio.codecs,
    }
    if audio.sample_rate:
        attributes["audioSamplingRate"] = str(audio.sample_rate)
    representation = ET.SubElement(adaptation, "Representation", attributes)
    _segment_template(representation, audio)


def render_mpd(video_tracks: Sequence[Track], audio: Track | None) -> str:
    """A static MPD (§5.3.1) with one Period (§5.3.2) holding every track."""
    check_presentation(video_tracks, audio)
    tracks = [*video_tracks, *([audio] if audio else [])]
    buffer = min_buffer_time(video_tracks)
    root = ET.Element(
        "MPD",
        {
            "xmlns": MPD_NAMESPACE,
            "profiles": PROFILES,
            "type": "static",
            "mediaPresentationDuration": format_duration(
                max(t.presentation_duration for t in tracks)
            ),
            "minBufferTime": format_duration(buffer),
        },
    )
    period = ET.SubElement(root, "Period", {"id": "0", "start": "PT0S"})
    _video_set(period, video_tracks, buffer)
    if audio is not None:
        _audio_set(period, audio, buffer)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"
