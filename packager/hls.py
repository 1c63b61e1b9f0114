"""HLS playlists (RFC 8216) rendered from measured tracks: pure, deterministic text.

Media playlists list a track's CMAF segments with their exact durations; the master playlist
lists one variant per video track plus one audio rendition group. Segment URIs are the file
names written by `FragmentSink`, and the media sequence number is the first file's number, the
same number DASH uses as startNumber, so both manifests address the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from packager.errors import PackagerError
from packager.model import (
    HLS_MEDIA_PLAYLIST,
    INIT_NAME,
    Track,
    check_presentation,
    order_variants,
    segment_name,
)

# EXT-X-MAP without EXT-X-I-FRAMES-ONLY needs version 6 (RFC 8216 §7); 7 is what we declare.
VERSION = 7
AUDIO_GROUP = "aud"
EXTINF_DECIMALS = 6


def format_decimal(value: Fraction, places: int) -> str:
    """`value` with exactly `places` decimals, rounded half to even, without float error."""
    scaled = round(value * 10**places)
    whole, frac = divmod(abs(scaled), 10**places)
    sign = "-" if scaled < 0 else ""
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"


def extinf_values(track: Track) -> list[str]:
    """EXTINF durations (RFC 8216 §4.3.2.1) as written: decimal seconds, 6 places."""
    return [format_decimal(s.seconds(track.timescale), EXTINF_DECIMALS) for s in track.segments]


def target_duration(track: Track) -> int:
    """EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1).

    Every EXTINF, rounded to the nearest integer, must be <= the target, so the target is the
    largest rounded EXTINF. Values are rounded as written (what a player reads), halves up,
    and the target is at least 1 (`Track.target_duration`, which BANDWIDTH is measured with).
    """
    return track.target_duration


def render_media_playlist(track: Track) -> str:
    """A VOD media playlist (RFC 8216 §4.3.3, §4.3.2) for one track folder.

    URIs are relative to the playlist, which sits in the track folder next to its segments.
    """
    if not track.segments:
        raise PackagerError(f"track {track.id!r} has no segments")
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target_duration(track)}",
        f"#EXT-X-MEDIA-SEQUENCE:{track.segments[0].number}",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{INIT_NAME}"',
    ]
    for segment, extinf in zip(track.segments, extinf_values(track), strict=True):
        lines += [f"#EXTINF:{extinf},", segment_name(segment.number)]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _audio_rendition(audio: Track) -> str:
    """EXT-X-MEDIA (RFC 8216 §4.3.4.1) for the single audio track."""
    attributes = [
        "TYPE=AUDIO",
        f'GROUP-ID="{AUDIO_GROUP}"',
        f'NAME="{audio.id}"',
        *([f'LANGUAGE="{audio.language}"'] if audio.language != "und" else []),
        "DEFAULT=YES",
        "AUTOSELECT=YES",
        *([f'CHANNELS="{audio.channels}"'] if audio.channels else []),
        f'URI="{audio.id}/{HLS_MEDIA_PLAYLIST}"',
    ]
    return "#EXT-X-MEDIA:" + ",".join(attributes)


def _variant(video: Track, audio: Track | None) -> list[str]:
    """EXT-X-STREAM-INF (RFC 8216 §4.3.4.2) and URI line for one video track.

    BANDWIDTH is "the largest sum of peak segment bit rates that is produced by any playable
    combination of Renditions": the video's peak segment bit rate plus the audio's, each over
    runs of 0.5-1.5 target durations of its own playlist; AVERAGE-BANDWIDTH the same with
    averages.
    """
    bandwidth = video.peak_bandwidth + (audio.peak_bandwidth if audio else 0)
    average = video.average_bandwidth + (audio.average_bandwidth if audio else 0)
    codecs = ",".join([video.codecs, *([audio.codecs] if audio else [])])
    attributes = [
        f"BANDWIDTH={bandwidth}",
        f"AVERAGE-BANDWIDTH={average}",
        f'CODECS="{codecs}"',
        f"RESOLUTION={video.width}x{video.height}",
        *([f"FRAME-RATE={format_decimal(video.frame_rate, 3)}"] if video.frame_rate else []),
        *([f'AUDIO="{AUDIO_GROUP}"'] if audio else []),
    ]
    return ["#EXT-X-STREAM-INF:" + ",".join(attributes), f"{video.id}/{HLS_MEDIA_PLAYLIST}"]


def render_master(video_tracks: Sequence[Track], audio: Track | None) -> str:
    """The master playlist (RFC 8216 §4.3.4): one variant per video track, one audio group."""
    check_presentation(video_tracks, audio)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(_audio_rendition(audio))
    for video in order_variants(video_tracks):
        lines += _variant(video, audio)
    return "\n".join(lines) + "\n"
