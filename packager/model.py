"""Plain data the packager renders manifests from.

Everything here is measured from the CMAF files actually written (ISO/IEC 23000-19), never
from what the encoder was asked to do: durations come from `tfdt`/`trun`, sizes from the files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from packager.errors import PackagerError

TrackKind = Literal["video", "audio"]


@dataclass(frozen=True, slots=True)
class Segment:
    """One CMAF fragment stored as its own file (`moof` + `mdat`)."""

    number: int  # 1-based; the file name is f"{number:05d}.m4s"
    start: int  # baseMediaDecodeTime, in the track's timescale
    duration: int  # sum of sample durations, in the track's timescale
    size: int  # bytes of the segment file

    def seconds(self, timescale: int) -> Fraction:
        return Fraction(self.duration, timescale)


@dataclass(frozen=True, slots=True)
class Track:
    """One rendition: a folder with `init.mp4` and numbered `.m4s` segments.

    `id` is also the folder name and the DASH Representation id (e.g. "v720", "audio").
    """

    id: str
    kind: TrackKind
    codecs: str  # RFC 6381 string, e.g. "avc1.64001f" or "mp4a.40.2"
    timescale: int
    segments: tuple[Segment, ...]
    init_size: int
    # video only
    width: int = 0
    height: int = 0
    frame_rate: Fraction = Fraction(0)
    # audio only
    sample_rate: int = 0
    channels: int = 0
    language: str = "und"
    # when the first sample presents (decode time + composition offset), in timescale ticks
    first_presentation: int = 0
    # when the last sample to be shown stops being shown, in ticks (0: unknown)
    presentation_end: int = 0

    @property
    def presentation_duration(self) -> Fraction:
        """From the first frame shown to the end of the last: what a player plays. Decode
        durations (`duration`) can fall short of it by a B-frame delay."""
        if not self.presentation_end:
            return self.duration
        return Fraction(self.presentation_end - self.first_presentation, self.timescale)

    @property
    def duration(self) -> Fraction:
        return Fraction(sum(s.duration for s in self.segments), self.timescale)

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1) of this track's media playlist: the
        largest EXTINF as written (6 decimals), rounded to the nearest integer, at least 1."""
        extinfs = (round(s.seconds(self.timescale), 6) for s in self.segments)
        return max([1, *(round_half_up(value) for value in extinfs)])

    @property
    def peak_bandwidth(self) -> int:
        """Peak segment bit rate in bit/s, as RFC 8216 §4.3.4.2 defines it for BANDWIDTH."""
        return peak_segment_bit_rate(self.segments, self.timescale, self.target_duration)

    @property
    def average_bandwidth(self) -> int:
        """Average segment bit rate over the whole track in bit/s (AVERAGE-BANDWIDTH,
        RFC 8216 §4.3.4.2)."""
        total = sum(s.duration for s in self.segments)
        if not total:
            return 0
        return round(sum(s.size for s in self.segments) * 8 * self.timescale / total)

    def delivery_bandwidth(self, min_buffer_seconds: Fraction) -> int:
        """DASH Representation@bandwidth (ISO/IEC 23009-1 §5.3.5.2) for `@minBufferTime`."""
        return delivery_bandwidth(self.segments, self.timescale, min_buffer_seconds)


def round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)) // 1)


def peak_segment_bit_rate(segments: Sequence[Segment], timescale: int, target: int) -> int:
    """RFC 8216 §4.3.4.2: "the largest bit rate of any continuous set of segments whose total
    duration is between 0.5 and 1.5 times the target duration", a set's bit rate being its
    total size over its total duration.

    A lone short last segment is not such a set, so it no longer inflates the peak. When no
    set qualifies (a track shorter than half its target duration) the whole track is the
    only set there is, and its average is the peak."""
    low, high = Fraction(target, 2) * timescale, Fraction(3 * target, 2) * timescale
    best: Fraction | None = None
    for first in range(len(segments)):
        size = duration = 0
        for segment in segments[first:]:
            size += segment.size
            duration += segment.duration
            if duration > high:
                break
            if duration >= low:
                rate = Fraction(size * 8 * timescale, duration)
                best = rate if best is None or rate > best else best
    if best is None:
        total = sum(s.duration for s in segments)
        if not total:
            return 0
        best = Fraction(sum(s.size for s in segments) * 8 * timescale, total)
    return round(best)


def delivery_bandwidth(segments: Sequence[Segment], timescale: int, min_buffer: Fraction) -> int:
    """The least bandwidth B of ISO/IEC 23009-1 §5.3.5.2's delivery model: over a constant
    channel of B bit/s, starting at any segment (each starts with a SAP), playout that begins
    `min_buffer` seconds after the first bit never runs out of data.

    Starting at segment i, segment k is complete after bits(i..k)/B seconds and is needed at
    min_buffer + (start of k - start of i), so B = max over i <= k of bits(i..k) over that
    time: the tightest ratio, rounded up to a whole bit per second."""
    if min_buffer <= 0:
        raise PackagerError(f"minBufferTime must be positive, got {min_buffer}")
    # bits / (min_buffer + elapsed / timescale) = bits * q * timescale / (p * timescale +
    # elapsed * q) with min_buffer = p / q: whole numbers, compared by cross-multiplying
    # (a 10-minute track has 45,000 pairs).
    p, q = min_buffer.numerator, min_buffer.denominator
    best_num, best_den = 0, 1
    for first in range(len(segments)):
        bits = elapsed = 0
        for segment in segments[first:]:
            bits += segment.size * 8
            num, den = bits * q * timescale, p * timescale + elapsed * q
            if num * best_den > best_num * den:
                best_num, best_den = num, den
            elapsed += segment.duration
    return -(-best_num // best_den)


def segment_name(number: int) -> str:
    """File name of segment `number` inside its track folder."""
    return f"{number:05d}.m4s"


INIT_NAME = "init.mp4"
HLS_MEDIA_PLAYLIST = "index.m3u8"
HLS_MASTER = "master.m3u8"
DASH_MANIFEST = "manifest.mpd"
DOWNLOAD_NAME = "download.mp4"  # the progressive MP4 for sharing (packager/progressive.py)

_TRACK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_presentation(video_tracks: Sequence[Track], audio: Track | None) -> None:
    """Refuse a set of tracks no manifest can describe.

    Ids become folder names and URI path segments, so they must be unique and URL-safe; every
    track needs at least one segment; kinds must match their role.
    """
    if not video_tracks:
        raise PackagerError("a presentation needs at least one video track")
    tracks = [*video_tracks, *([audio] if audio else [])]
    ids = [t.id for t in tracks]
    if len(set(ids)) != len(ids):
        raise PackagerError(f"track ids are not unique: {ids}")
    for track in tracks:
        if not _TRACK_ID.match(track.id):
            raise PackagerError(f"track id {track.id!r} is not a safe folder/URI name")
        if not track.segments:
            raise PackagerError(f"track {track.id!r} has no segments")
    if any(t.kind != "video" for t in video_tracks) or (audio and audio.kind != "audio"):
        raise PackagerError("video_tracks must all be video and audio must be audio")


def order_variants(video_tracks: Sequence[Track]) -> list[Track]:
    """Video tracks in manifest order: lowest peak bandwidth first.

    RFC 8216 leaves the first choice to the client, and Safari and hls.js start with the first
    variant listed, so playback starts fast and ABR climbs from there. The MPD lists its
    Representations in the same order.
    """
    return sorted(video_tracks, key=lambda t: (t.peak_bandwidth, t.height, t.width, t.id))
