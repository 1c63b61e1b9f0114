"""A growing HLS presentation (issue 15, "Playable early" without a second decode): the chunks of
a chunked job published as they land in timeline order, under HLS `EVENT` playlists
(RFC 8216 §4.3.3.5) that only ever grow and get `#EXT-X-ENDLIST` when the last chunk is in.

The chunk jobs' segments are numbered and timestamped as the single pass's (continuous
`tfdt`); what the finished track does to them (packager/timeline.py `finish_tracks`) is done
here chunk by chunk, so the growing track's segments are those of the finished one: the
first chunk starts at its first frame (`start_at_first_frame`, its end left open), every
later chunk moves by the same B-frame delay, inits get the `cmfc` brand. What differs from
the finished track: no short tail merged into the segment before it (a last segment may be
short; a media playlist's segments are never rewritten), and the decode timeline of the very
last sample is not lengthened (presentation times, which players follow, are exact).

`Growing` is what the playlists list so far, kept as JSON between publishes (the database row
of api/jobs/progressive.py); the renderings are pure text.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from packager.cmaf import describe_track
from packager.errors import PackagerError
from packager.hls import VERSION, extinf_values, render_master
from packager.model import INIT_NAME, Segment, Track, round_half_up, segment_name
from packager.moofedit import replace_file, shift_tfdts
from packager.timeline import add_cmaf_brand, start_at_first_frame

START_AT_ZERO = "#EXT-X-START:TIME-OFFSET=0"
"""RFC 8216 §4.3.5.2: players start at the beginning, not at the live edge of an EVENT list."""


def start_chunk(folder: Path, delay: int | None) -> int:
    """Re-time one chunk's folder of a video rung, in place, as the finished track has it: the
    first chunk (`delay` None) starts at its first frame and gets the `cmfc` brand; a later
    chunk's decode times move `delay` ticks earlier. Returns the delay."""
    if delay is None:
        add_cmaf_brand(folder)
        return start_at_first_frame(folder, whole=False)
    if delay:
        for path in segment_files(folder):
            replace_file(path, shift_tfdts(path.read_bytes(), -delay))
    return delay


def segment_files(folder: Path) -> list[Path]:
    """The `.m4s` files of a chunk's rung folder, in number order (they start at the chunk's
    first segment number, not 1)."""
    return sorted(folder.glob("*.m4s"), key=lambda p: int(p.stem))


def measure(folder: Path) -> Track:
    """A chunk's rung folder measured as a track (packager/cmaf.py `describe_track`) whose
    segments keep their own numbers."""
    paths = segment_files(folder)
    if not paths:
        raise PackagerError(f"{folder}: no segments")
    first = int(paths[0].stem)
    view = Path(tempfile.mkdtemp(prefix=".measure-", dir=folder.parent))
    try:
        os.link(folder / INIT_NAME, view / INIT_NAME)
        for number, path in enumerate(paths, start=1):
            os.link(path, view / segment_name(number))
        track = describe_track(view, folder.name)
    finally:
        shutil.rmtree(view, ignore_errors=True)
    moved = tuple(replace(s, number=s.number + first - 1) for s in track.segments)
    return replace(track, segments=moved)


def extend(track: Track | None, more: Track) -> Track:
    """`track` followed by `more`'s segments (the next chunk of the same rung)."""
    if track is None:
        return more
    if more.segments[0].number != track.segments[-1].number + 1:
        raise PackagerError(
            f"{more.id}: segment {more.segments[0].number} does not follow "
            f"{track.segments[-1].number}"
        )
    return replace(
        track, segments=track.segments + more.segments, presentation_end=more.presentation_end
    )


def end_seconds(track: Track) -> Fraction:
    """Where the track's last segment ends on the presentation timeline."""
    last = track.segments[-1]
    return Fraction(last.start + last.duration, track.timescale)


def audio_until(audio: Track, end: Fraction) -> Track:
    """The audio segments that start before `end`: the audio a video prefix ending at `end`
    needs (AAC segments of 2.005 s do not end where the video's do)."""
    kept = tuple(s for s in audio.segments if Fraction(s.start, audio.timescale) < end)
    return replace(audio, segments=kept or audio.segments[:1])


@dataclass
class Growing:
    """What the growing presentation lists: each video rung's track so far (top rung first),
    the whole audio track, the B-frame delay of each rung, each playlist's target duration
    (fixed at the first publish: RFC 8216 §6.2.1 lets it never change)."""

    video: list[Track] = field(default_factory=list)
    audio: Track | None = None
    delays: dict[str, int] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> Fraction:
        """How much of the video is playable: the top rung's end."""
        return end_seconds(self.video[0]) if self.video else Fraction(0)

    def to_json(self) -> str:
        tracks = [*self.video, *([self.audio] if self.audio else [])]
        return json.dumps(
            {
                "video": [t.id for t in self.video],
                "audio": self.audio.id if self.audio else None,
                "tracks": {t.id: _track_json(t) for t in tracks},
                "delays": self.delays,
                "targets": self.targets,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Growing:
        data = json.loads(text)
        tracks = {key: _track_of(value) for key, value in data["tracks"].items()}
        return cls(
            [tracks[key] for key in data["video"]],
            tracks[data["audio"]] if data["audio"] else None,
            {k: int(v) for k, v in data["delays"].items()},
            {k: int(v) for k, v in data["targets"].items()},
        )

    def playlists(self, segment_seconds: float, ended: bool) -> dict[str, str]:
        """Every playlist's text by its path in the render (`v360/index.m3u8`, ...,
        `master.m3u8` last): the media playlists list what is there, the audio's as far as
        the video goes (all of it once `ended`)."""
        if not self.video:
            raise PackagerError("a growing presentation needs a video track")
        audio = self.audio
        if audio is not None and not ended:
            audio = audio_until(audio, self.seconds)
        texts: dict[str, str] = {}
        for track in [*self.video, *([audio] if audio else [])]:
            floor = max(1, round_half_up(Fraction(segment_seconds)))
            target = self.targets.setdefault(track.id, max(floor, track.target_duration))
            target = max(target, track.target_duration)
            texts[f"{track.id}/index.m3u8"] = render_event_playlist(track, target, ended)
        texts["master.m3u8"] = render_event_master(self.video, audio)
        return texts


def render_event_playlist(track: Track, target: int, ended: bool) -> str:
    """An EVENT media playlist (RFC 8216 §4.3.3.5): segments are only ever added; with
    `#EXT-X-ENDLIST` once `ended`."""
    if not track.segments:
        raise PackagerError(f"track {track.id!r} has no segments")
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{VERSION}",
        f"#EXT-X-TARGETDURATION:{target}",
        f"#EXT-X-MEDIA-SEQUENCE:{track.segments[0].number}",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        START_AT_ZERO,
        f'#EXT-X-MAP:URI="{INIT_NAME}"',
    ]
    for segment, extinf in zip(track.segments, extinf_values(track), strict=True):
        lines += [f"#EXTINF:{extinf},", segment_name(segment.number)]
    if ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def render_event_master(video: list[Track], audio: Track | None) -> str:
    """The master playlist (packager/hls.py `render_master`) with `#EXT-X-START` at 0."""
    lines = render_master(video, audio).splitlines()
    at = lines.index("#EXT-X-INDEPENDENT-SEGMENTS") + 1
    return "\n".join([*lines[:at], START_AT_ZERO, *lines[at:]]) + "\n"


def _track_json(track: Track) -> dict[str, Any]:
    data = asdict(track)
    data["segments"] = [[s.number, s.start, s.duration, s.size] for s in track.segments]
    data["frame_rate"] = str(track.frame_rate)
    return data


def _track_of(data: dict[str, Any]) -> Track:
    segments = tuple(Segment(*map(int, s)) for s in data["segments"])
    return Track(**{**data, "segments": segments, "frame_rate": Fraction(data["frame_rate"])})
