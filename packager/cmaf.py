"""CMAF track files (ISO/IEC 23000-19): how to make PyAV write them, and what they hold.

`muxer_options` configures FFmpeg's mp4 muxer for fragmented output, `FragmentSink` (see
`packager.sink`) cuts its byte stream into `init.mp4` + numbered `.m4s` files, and
`describe_track` measures those files (the source of truth) into a `Track` for the manifests.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from packager.codecs import SampleDescription, describe_sample_entry
from packager.errors import MalformedSegmentError, PackagerError, UnsupportedMediaError
from packager.isobmff import (
    find_box,
    iter_boxes,
    parse_hdlr,
    parse_mdhd,
    parse_stsd,
    parse_tkhd,
    parse_trex,
    read_fragment_timing,
    require_box,
)
from packager.model import INIT_NAME, Segment, Track, TrackKind, segment_name
from packager.sink import FragmentSink

__all__ = ["FragmentSink", "describe_track", "muxer_options"]

# empty_moov: ftyp+moov up front with no samples; default_base_moof: data offsets relative to
# the moof (needed once a fragment is its own file); skip_sidx/skip_trailer: no sidx, no mfra.
# Video leaves out `cmaf`: FFmpeg ties it to signed composition offsets (trun v1), which
# Chromium and GPAC present from 0 but FFmpeg's and GStreamer's demuxers shift by the B-frame
# delay (issue 13). Unsigned offsets (v0) are read alike by all; packager/timeline.py then
# re-times the first fragment so the first frame shows at 0, and adds the `cmfc` brand.
_COMMON_FLAGS = ("empty_moov", "default_base_moof", "skip_sidx", "skip_trailer")
_HANDLERS: dict[str, TrackKind] = {"vide": "video", "soun": "audio"}
_SEGMENT_FILE = re.compile(r"^(\d{5})\.m4s$")


def muxer_options(kind: TrackKind, fragment_seconds: float) -> dict[str, str]:
    """Options for PyAV's "mp4" muxer (`av.open(sink, "w", format="mp4", options=...)`).

    Video is cut at every keyframe (`frag_keyframe`): the encoder places an IDR exactly every
    GOP, so one fragment is one GOP. FFmpeg applies `frag_keyframe` to video tracks only, so an
    audio-only file would come out as one fragment; audio is cut every `fragment_seconds`
    instead (`frag_duration`, in microseconds; a fragment ends at the first frame boundary at
    or past it, e.g. 94 AAC frames = 2.0053 s at 48 kHz for 2 s).
    """
    if fragment_seconds <= 0:
        raise ValueError(f"fragment_seconds must be positive, got {fragment_seconds}")
    if kind == "video":
        return {"movflags": "+".join(("frag_keyframe", *_COMMON_FLAGS))}
    return {
        "movflags": "+".join((*_COMMON_FLAGS, "cmaf")),
        "frag_duration": str(round(fragment_seconds * 1_000_000)),
    }


@dataclass(frozen=True, slots=True)
class InitInfo:
    """What an init segment's single track says about itself."""

    track_id: int
    kind: TrackKind
    timescale: int
    language: str
    default_sample_duration: int  # from trex, 0 when absent
    width: int
    height: int
    sample: SampleDescription


def read_init(data: bytes) -> InitInfo:
    """Parse a CMAF header (`ftyp` + `moov` with exactly one `trak`)."""
    moov = require_box(data, "moov", INIT_NAME)
    traks = [box for box in iter_boxes(moov.payload) if box.type == "trak"]
    if len(traks) != 1:
        raise UnsupportedMediaError(f"{INIT_NAME}: expected one trak, found {len(traks)}")
    trak = traks[0].payload
    tkhd = parse_tkhd(require_box(trak, "tkhd", "trak").payload)
    mdhd = parse_mdhd(require_box(trak, "mdia/mdhd", "trak").payload)
    handler = parse_hdlr(require_box(trak, "mdia/hdlr", "trak").payload)
    if handler not in _HANDLERS:
        raise UnsupportedMediaError(f"{INIT_NAME}: handler {handler!r} is not video or audio")
    entries = parse_stsd(require_box(trak, "mdia/minf/stbl/stsd", "trak").payload)
    if not entries:
        raise MalformedSegmentError(f"{INIT_NAME}: stsd has no sample entry")
    sample = describe_sample_entry(entries[0])
    mvex = find_box(moov.payload, "mvex")
    extends = [
        parse_trex(b.payload) for b in iter_boxes(mvex.payload if mvex else b"") if b.type == "trex"
    ]
    trex = next((t.default_sample_duration for t in extends if t.track_id == tkhd.track_id), 0)
    return InitInfo(
        track_id=tkhd.track_id,
        kind=_HANDLERS[handler],
        timescale=mdhd.timescale,
        language=mdhd.language,
        default_sample_duration=trex,
        width=tkhd.width or sample.width,
        height=tkhd.height or sample.height,
        sample=sample,
    )


def earliest_presentation(init: bytes, segment: bytes) -> int:
    """The earliest presentation time (decode time + composition offset, ISO/IEC 14496-12
    §8.8.8) of the samples in one segment of the track `init` describes, in its timescale."""
    info = read_init(init)
    timing = read_fragment_timing(segment, info.track_id, info.default_sample_duration)
    return timing.earliest_presentation


def list_segment_files(track_dir: Path) -> list[Path]:
    """The track's segment files in order; numbering must run 1..N without a gap."""
    numbered = sorted(
        (int(match[1]), path)
        for path in track_dir.iterdir()
        if (match := _SEGMENT_FILE.match(path.name))
    )
    for expected, (number, _) in enumerate(numbered, start=1):
        if number != expected:
            raise MalformedSegmentError(f"{track_dir}: {segment_name(expected)} is missing")
    return [path for _, path in numbered]


def describe_track(track_dir: Path, track_id: str) -> Track:
    """Measure a track folder (`init.mp4` + `00001.m4s`...) into a `Track`.

    Times come from each segment's `tfdt`/`trun`, sizes from the files. A segment starts at
    its earliest presentation time (what DASH's `S@t` is, ISO/IEC 23009-1 §5.3.9.6) and
    lasts until the next one's, the last until its last frame stops being shown: with
    B-frames a fragment's decode durations can differ from the time it is on screen
    (packager/timeline.py squeezes the first fragment's). The video frame rate is the
    timescale over the most common sample duration, kept exact (30000/1001).
    """
    track_dir = Path(track_dir)
    try:
        init = (track_dir / INIT_NAME).read_bytes()
    except FileNotFoundError as exc:
        raise PackagerError(f"{track_dir}: no {INIT_NAME}") from exc
    info = read_init(init)
    paths = list_segment_files(track_dir)
    if not paths:
        raise PackagerError(f"{track_dir}: no segments")
    timings = []
    sizes = []
    durations: Counter[int] = Counter()
    for path in paths:
        data = path.read_bytes()
        try:
            timing = read_fragment_timing(data, info.track_id, info.default_sample_duration)
        except MalformedSegmentError as exc:
            raise MalformedSegmentError(f"{path}: {exc}") from exc
        durations.update(timing.sample_durations)
        timings.append(timing)
        sizes.append(len(data))
    segments = []
    for index, (timing, size) in enumerate(zip(timings, sizes, strict=True)):
        start = timing.earliest_presentation
        lead = start - timing.base_media_decode_time  # decode -> presentation, here
        if index + 1 < len(timings):
            after = timings[index + 1]
            lead_after = after.earliest_presentation - after.base_media_decode_time
            duration = timing.duration + lead_after - lead
        else:
            duration = timing.presentation_end - start
        segments.append(Segment(index + 1, start, duration, size))
    first_presentation = timings[0].earliest_presentation
    presentation_end = timings[-1].presentation_end
    if info.kind == "video":
        typical = durations.most_common(1)[0][0] if durations else 0
        media: dict[str, Any] = {
            "width": info.width,
            "height": info.height,
            "frame_rate": Fraction(info.timescale, typical) if typical else Fraction(0),
        }
    else:
        media = {"sample_rate": info.sample.sample_rate, "channels": info.sample.channels}
    return Track(
        id=track_id,
        kind=info.kind,
        codecs=info.sample.codecs,
        timescale=info.timescale,
        segments=tuple(segments),
        init_size=len(init),
        language=info.language,
        first_presentation=first_presentation,
        presentation_end=presentation_end,
        **media,
    )
