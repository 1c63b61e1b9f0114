"""Finishing a presentation's CMAF track folders before their manifests are written.

Three steps on the files the muxers wrote, all byte-exact rewrites of what is already there:

* **One start instant for every track.** Video is muxed with unsigned composition offsets
  (`trun` version 0, ISO/IEC 14496-12 §8.8.8): its first decode time is 0 and its first frame
  presents at the encoder's B-frame delay (2 frames for x264's defaults). Every MP4 reader
  agrees on that time: Chromium, GPAC, FFmpeg and GStreamer alike, whereas signed offsets
  (version 1) without an edit list are read as 0 by the first two and as the delay by the
  last two (issue 13). Audio has no delay, so `align_presentation_starts` moves every other
  track's decode times (`tfdt`, §8.8.12) later by the difference: every track's first sample
  then presents at the same instant in every reader, and the manifests say where it is
  (DASH `@presentationTimeOffset`; HLS players start at the first presentation time).
* **No sliver at the end.** A leftover of a few frames after the last full segment would be a
  segment of its own (EXTINF 0.083). `merge_short_tail` appends a last segment shorter than
  half the segment duration to the one before it: a CMAF segment may hold several fragments
  (ISO/IEC 23000-19 §7.3.2.2), each `moof` keeps its `tfdt` and sequence number, and the
  merged segment still starts with the IDR that started it.
* **The `cmfc` brand** (ISO/IEC 23000-19 §7.2) in every header's `ftyp`, which FFmpeg writes
  only together with signed composition offsets (`movflags=+cmaf`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from packager.cmaf import earliest_presentation, list_segment_files, read_init
from packager.errors import MalformedSegmentError, PackagerError
from packager.isobmff import Bytes, iter_boxes, read_fragment_timing, read_full_box
from packager.model import INIT_NAME

CMAF_BRAND = b"cmfc"


@dataclass(frozen=True, slots=True)
class TrackStart:
    """When a track folder's first sample presents: ticks of its own timescale."""

    folder: Path
    timescale: int
    ticks: int

    @property
    def seconds(self) -> Fraction:
        return Fraction(self.ticks, self.timescale)


def presentation_start(folder: Path) -> TrackStart:
    """The earliest presentation time (decode time + composition offset) in the first segment.

    CMAF segments start with a sync sample whose frames are presented no earlier than any
    later segment's (ISO/IEC 23000-19 §7.3.2.2), so the first segment holds the track's
    earliest presentation."""
    folder = Path(folder)
    init = (folder / INIT_NAME).read_bytes()
    paths = list_segment_files(folder)
    if not paths:
        raise PackagerError(f"{folder}: no segments")
    try:
        ticks = earliest_presentation(init, paths[0].read_bytes())
    except MalformedSegmentError as exc:
        raise MalformedSegmentError(f"{paths[0]}: {exc}") from exc
    return TrackStart(folder, read_init(init).timescale, ticks)


def shift_decode_times(folder: Path, ticks: int) -> None:
    """Add `ticks` to the `tfdt` of every fragment in every segment of `folder`, in place.

    The box sizes do not change, so nothing else in the files moves."""
    if ticks < 0:
        raise ValueError(f"decode times only move later, got {ticks}")
    if not ticks:
        return
    for path in list_segment_files(Path(folder)):
        data = bytearray(path.read_bytes())
        for offset, version in _tfdt_positions(data):
            width = 8 if version == 1 else 4
            value = int.from_bytes(data[offset : offset + width], "big") + ticks
            if value >= 1 << (8 * width):
                raise MalformedSegmentError(f"{path}: tfdt overflows {width} bytes")
            data[offset : offset + width] = value.to_bytes(width, "big")
        _replace(path, bytes(data))


def align_presentation_starts(folders: Sequence[Path]) -> Fraction:
    """Delay every track whose first sample presents earlier than the latest-starting one.

    Returns the common start in seconds. A track's shift is rounded to its own timescale
    (at most half a tick off: 10 µs for 48 kHz audio)."""
    starts = [presentation_start(folder) for folder in folders]
    if not starts:
        raise PackagerError("no tracks to align")
    target = max(start.seconds for start in starts)
    for start in starts:
        shift = round((target - start.seconds) * start.timescale)
        shift_decode_times(start.folder, shift)
    return target


def tail_seconds(folder: Path) -> Fraction:
    """How long the last segment of a track folder lasts."""
    folder = Path(folder)
    paths = list_segment_files(folder)
    if not paths:
        raise PackagerError(f"{folder}: no segments")
    info = read_init((folder / INIT_NAME).read_bytes())
    timing = read_fragment_timing(
        paths[-1].read_bytes(), info.track_id, info.default_sample_duration
    )
    return Fraction(timing.duration, info.timescale)


def merge_last_segments(folder: Path) -> bool:
    """Append the last segment to the one before it; False when there is only one.

    The merged file is written under a temporary name and renamed over the earlier segment
    before the tail is removed, so no sample is ever absent."""
    paths = list_segment_files(Path(folder))
    if len(paths) < 2:
        return False
    _replace(paths[-2], paths[-2].read_bytes() + paths[-1].read_bytes())
    paths[-1].unlink()
    return True


def merge_short_tail(folder: Path, segment_seconds: float) -> bool:
    """Merge the last segment into the one before when it lasts less than half a segment.

    Returns whether it did."""
    half = Fraction(segment_seconds).limit_denominator(1_000_000) / 2
    if len(list_segment_files(Path(folder))) < 2 or tail_seconds(folder) >= half:
        return False
    return merge_last_segments(folder)


def add_cmaf_brand(folder: Path) -> None:
    """Make sure `init.mp4`'s `ftyp` lists `cmfc` among its compatible brands (§7.2).

    The ftyp is the first box of the header and an `empty_moov` holds no absolute file
    offsets, so growing it by 4 bytes moves nothing that is pointed at."""
    path = Path(folder) / INIT_NAME
    data = path.read_bytes()
    boxes = list(iter_boxes(data))
    if not boxes or boxes[0].type != "ftyp" or boxes[0].offset != 0:
        raise MalformedSegmentError(f"{path}: does not start with an ftyp box")
    ftyp = boxes[0]
    payload = bytes(ftyp.payload)
    if len(payload) < 8 or (len(payload) - 8) % 4:
        raise MalformedSegmentError(f"{path}: malformed ftyp")
    brands = [payload[i : i + 4] for i in range(8, len(payload), 4)]
    if CMAF_BRAND in brands:
        return
    payload += CMAF_BRAND
    _replace(path, struct.pack(">I4s", 8 + len(payload), b"ftyp") + payload + data[ftyp.size :])


def _tfdt_positions(data: Bytes) -> list[tuple[int, int]]:
    """(absolute offset of the baseMediaDecodeTime field, tfdt version) for every tfdt."""
    found = []
    for moof in iter_boxes(data):
        if moof.type != "moof":
            continue
        moof_body = moof.offset + moof.size - len(moof.payload)
        for traf in iter_boxes(moof.payload):
            if traf.type != "traf":
                continue
            traf_body = moof_body + traf.offset + traf.size - len(traf.payload)
            for box in iter_boxes(traf.payload):
                if box.type == "tfdt":
                    version, _, _ = read_full_box(box.payload, "tfdt")
                    body = traf_body + box.offset + box.size - len(box.payload)
                    found.append((body + 4, version))
    return found


def _replace(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.partial")
    temp.write_bytes(data)
    temp.replace(path)


def finish_tracks(
    video_folders: Sequence[Path], audio_folder: Path | None, segment_seconds: float
) -> Fraction:
    """All three steps on a presentation's track folders, before `describe_track` measures
    them: tails merged, `cmfc` branded, starts aligned. Returns the common start in seconds.

    Video rungs share one GOP structure, so they merge alike. Audio, cut every
    `segment_seconds` on AAC frame boundaries (2.0053 s for 2 s), follows the video when it
    had as many segments, so both keep the same count (a video tail of 1.00 s stays while
    the audio's is 0.98 s); a longer or shorter audio track goes by its own tail."""
    if not video_folders:
        raise PackagerError("a presentation needs at least one video track")
    video_count = len(list_segment_files(Path(video_folders[0])))
    merged = [merge_short_tail(folder, segment_seconds) for folder in video_folders]
    folders = list(video_folders)
    if audio_folder is not None:
        folders.append(audio_folder)
        if len(list_segment_files(Path(audio_folder))) == video_count:
            if any(merged) and tail_seconds(audio_folder) < Fraction(segment_seconds):
                merge_last_segments(audio_folder)
        else:
            merge_short_tail(audio_folder, segment_seconds)
    for folder in folders:
        add_cmaf_brand(folder)
    return align_presentation_starts(folders)
