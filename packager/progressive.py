"""`download.mp4`: a progressive MP4 for sharing, remuxed from the CMAF tracks already written.

Issue 12, "An MP4 for sharing": the 720p rung (or the top rung when the ladder stops below
720) plus the audio track, as one ordinary (non-fragmented) MP4 with the `moov` ahead of the
`mdat` (`movflags=+faststart`), so a browser or a messaging app can play it while it
downloads. Nothing is encoded again: every sample is copied byte for byte from the rung's
`init.mp4` + `.m4s` files, with the decode and presentation times its `tfdt`/`trun` boxes
give (packager/fragments.py), so the file is exactly the frames and sound the HLS/DASH
players get.

Timing (ISO/IEC 14496-12 §8.6.1): the CMAF video track's first frame presents at 0 without an
edit list (packager/timeline.py; older outputs used signed `trun` offsets). A non-fragmented MP4
has the same shape as FFmpeg writes it: decode times moved back by the B-frame delay
(the first `dts` negative) and an edit list (§8.6.6) that starts the presentation at the
first frame, so the first video frame and the first audio sample both present at 0. FFmpeg's
own reading of `trun` offsets is not used for this: it shifts presentation times by the most
negative offset seen so far, which may change as it reads on.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from packager.cmaf import list_segment_files, read_init
from packager.errors import PackagerError
from packager.fragments import SampleRef, read_fragment_samples, read_track_defaults
from packager.model import DOWNLOAD_NAME, INIT_NAME, Track

DOWNLOAD_SHORT_SIDE = 720
MUXER_OPTIONS = {"movflags": "+faststart"}


def download_track(video_tracks: Sequence[Track]) -> Track:
    """The rung the download is made of: the largest whose short side is at most 720 (the
    720p rung), else the smallest one."""
    if not video_tracks:
        raise PackagerError("a download needs a video track")

    def short_side(track: Track) -> int:
        return min(track.width, track.height)

    fitting = [t for t in video_tracks if short_side(t) <= DOWNLOAD_SHORT_SIDE]
    if fitting:
        return max(fitting, key=short_side)
    return min(video_tracks, key=short_side)


@dataclass(frozen=True, slots=True)
class Download:
    """What `write_download` wrote: report.json's `output.download`."""

    file: str
    rung: str
    audio: str | None  # the audio track's id, None when the file is video only
    bytes: int
    duration: float  # seconds, the video track's

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rung": self.rung,
            "audio": self.audio,
            "bytes": self.bytes,
            "duration": self.duration,
        }


def write_download(outdir: Path, video_tracks: Sequence[Track], audio: Track | None) -> Download:
    """Remux `download_track(video_tracks)` and `audio` (if any) into `outdir/download.mp4`."""
    outdir = Path(outdir)
    video = download_track(video_tracks)
    folders = [outdir / video.id, *([outdir / audio.id] if audio is not None else [])]
    dest = outdir / DOWNLOAD_NAME
    remux_tracks(folders, dest)
    return Download(
        file=DOWNLOAD_NAME,
        rung=video.id,
        audio=audio.id if audio is not None else None,
        bytes=dest.stat().st_size,
        duration=round(float(video.duration), 6),
    )


@dataclass(frozen=True, slots=True)
class _SourceTrack:
    """One CMAF track folder, measured: its init segment and each segment's samples."""

    folder: Path
    timescale: int
    segments: tuple[tuple[Path, tuple[SampleRef, ...]], ...]

    @property
    def samples(self) -> Iterator[SampleRef]:
        for _, samples in self.segments:
            yield from samples


def read_source_track(folder: Path) -> _SourceTrack:
    """Every sample of a track folder (`init.mp4` + `00001.m4s`...), segment by segment."""
    init = (folder / INIT_NAME).read_bytes()
    info = read_init(init)
    defaults = read_track_defaults(init, info.track_id)
    segments = tuple(
        (path, tuple(read_fragment_samples(path.read_bytes(), info.track_id, defaults)))
        for path in list_segment_files(folder)
    )
    if not any(samples for _, samples in segments):
        raise PackagerError(f"{folder}: no samples")
    return _SourceTrack(folder, info.timescale, segments)


def remux_tracks(folders: Sequence[Path], dest: Path) -> None:
    """Copy every sample of the CMAF track folders into one faststart MP4 at `dest`.

    Tracks keep their order (video first) and their timescales; samples are interleaved by
    decode time, so a player reading from the front finds sound and picture together. The
    file is written under a temporary name and renamed into place.
    """
    tracks = [read_source_track(Path(folder)) for folder in folders]
    # The common timeline starts at the earliest presentation of any track (0 for ours), so
    # an offset between audio and video, if a source had one, is kept.
    start = min(Fraction(min(s.presentation_time for s in t.samples), t.timescale) for t in tracks)
    temp = dest.with_name(f".{dest.name}.partial")
    try:
        with av.open(str(temp), mode="w", format="mp4", options=MUXER_OPTIONS) as out:
            streams = [_add_stream(out, track) for track in tracks]
            for packet in _interleaved(tracks, start):
                packet.stream = streams[packet.index]
                out.mux(packet.to_av())
        temp.replace(dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@dataclass(slots=True)
class _Packet:
    """One sample on its way out: which output stream, its times, and its bytes."""

    index: int
    time: Fraction  # decode time in seconds, the interleaving key
    pts: int
    dts: int
    duration: int
    sync: bool
    data: bytes
    timescale: int
    stream: Any = None

    def to_av(self) -> Any:
        packet = av.Packet(self.data)
        packet.stream = self.stream
        packet.time_base = Fraction(1, self.timescale)
        packet.pts, packet.dts, packet.duration = self.pts, self.dts, self.duration
        packet.is_keyframe = self.sync
        return packet


def _track_packets(index: int, track: _SourceTrack, start: Fraction) -> Iterator[_Packet]:
    """A track's samples with output times: presentation times from `start`, decode times
    moved back by the track's largest decode-before-presentation gap (its B-frame delay), so
    that no sample is decoded after it is shown."""
    scale = track.timescale
    origin = round(start * scale)
    delay = max(0, max(s.decode_time - s.presentation_time for s in track.samples))
    for path, samples in track.segments:
        data = path.read_bytes()
        for s in samples:
            dts = s.decode_time - delay - origin
            yield _Packet(
                index=index,
                time=Fraction(dts, scale),
                pts=s.presentation_time - origin,
                dts=dts,
                duration=s.duration,
                sync=s.sync,
                data=data[s.offset : s.offset + s.size],
                timescale=scale,
            )


def _interleaved(tracks: Sequence[_SourceTrack], start: Fraction) -> Iterator[_Packet]:
    """Every track's packets merged in decode-time order (ties: track order)."""
    return heapq.merge(
        *(_track_packets(i, t, start) for i, t in enumerate(tracks)),
        key=lambda p: (p.time, p.index),
    )


def _add_stream(out: Any, track: _SourceTrack) -> Any:
    """An output stream with the track's codec parameters (avcC / esds) and timescale."""
    with av.open(str(track.folder / INIT_NAME)) as init:
        stream = out.add_stream_from_template(init.streams[0])
    stream.time_base = Fraction(1, track.timescale)
    return stream
