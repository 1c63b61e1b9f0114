"""Finishing a presentation's CMAF track folders before their manifests are written.

Three steps on the files the muxers wrote, all byte-exact rewrites of what is already there:

* **Video starts at its first frame, in every reader.** Video is muxed with unsigned
  composition offsets (`trun` version 0, ISO/IEC 14496-12 §8.8.8): FFmpeg decodes the IDR
  the B-frame delay (2 frames for x264's defaults) before it shows it. `start_at_first_frame`
  re-times the first fragment so the IDR presents at its decode time, with every offset
  still unsigned and no edit list. Issue 13 measured the alternatives: signed offsets (v1)
  put video 2 frames late in FFmpeg and GStreamer; an edit list is ignored by GStreamer's
  adaptive demuxers; moving the audio's decode times instead put Shaka's HLS video 2 frames
  late. `align_presentation_starts` then only has to move a track that would still start
  earlier than another (none does from this engine: both start at 0).
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
from packager.errors import MalformedSegmentError, PackagerError, UnsupportedMediaError
from packager.fragments import SampleDefaults, read_fragment_samples, read_track_defaults
from packager.isobmff import (
    iter_boxes,
    read_fragment_timing,
)
from packager.model import INIT_NAME
from packager.moofedit import rebuild_moof, replace_file, sample_count, shift_tfdts

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
        try:
            replace_file(path, shift_tfdts(path.read_bytes(), ticks))
        except MalformedSegmentError as exc:
            raise MalformedSegmentError(f"{path}: {exc}") from exc


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
    replace_file(paths[-2], paths[-2].read_bytes() + paths[-1].read_bytes())
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
    replace_file(path, struct.pack(">I4s", 8 + len(payload), b"ftyp") + payload + data[ftyp.size :])


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
    for folder in video_folders:
        start_at_first_frame(folder)
    return align_presentation_starts(folders)


def start_at_first_frame(folder: Path, *, whole: bool = True) -> int:
    """Make a video track's first frame present at its first decode time, with every
    composition offset still unsigned (`trun` version 0). Returns the ticks removed (the
    B-frame delay), 0 when there was none.

    FFmpeg writes unsigned offsets by decoding the IDR `delay` ticks before it is shown.
    Every reader agrees on those times, but each maps a different instant to the start:
    Shaka (HLS) and hls.js the first decode time, DASH players the presentationTimeOffset,
    FFmpeg and GStreamer the media times as they are. With the first frame shown at its
    decode time they all agree. Decode times of every sample move `delay` earlier except
    the first few of the first fragment, which are squeezed in between the IDR (decode =
    presentation) and the first sample whose moved decode time is late enough to leave one
    tick per sample, each kept at or before its own presentation time (§8.8.8: `trun`
    sample durations are the decode time deltas). Presentation times do not change: the
    frames, and where they show, are exactly what the encoder wrote. `whole=False`: the folder
    is the start of a track whose later segments are not there yet (a growing presentation,
    packager/growing.py), so its end is left as it is (no decode time given back)."""
    folder = Path(folder)
    paths = list_segment_files(folder)
    if not paths:
        raise PackagerError(f"{folder}: no segments")
    init = (folder / INIT_NAME).read_bytes()
    info = read_init(init)
    defaults = read_track_defaults(init, info.track_id)
    first = paths[0].read_bytes()
    moof = next((b for b in iter_boxes(first) if b.type == "moof"), None)
    if moof is None:
        raise MalformedSegmentError(f"{paths[0]}: no moof")
    moof_end = moof.offset + moof.size
    count = sample_count(moof.payload, info.track_id)
    samples = read_fragment_samples(first, info.track_id, defaults)[:count]
    if not samples:
        raise MalformedSegmentError(f"{paths[0]}: no samples")
    base = samples[0].decode_time
    delay = samples[0].presentation_time - base
    if delay <= 0:
        return 0
    if samples[0].presentation_time != min(s.presentation_time for s in samples):
        raise UnsupportedMediaError(f"{paths[0]}: the first sample is not the first shown")
    decode = [s.decode_time - delay for s in samples]
    shown = [s.presentation_time - delay for s in samples]
    squeezed = _squeeze(decode, shown, base)
    if squeezed is None:
        raise UnsupportedMediaError(f"{paths[0]}: no room to start at the first frame")
    ends = [*squeezed[1:], squeezed[-1] + samples[-1].duration]
    durations = [end - start for start, end in zip(squeezed, ends, strict=True)]
    offsets = [p - d for p, d in zip(shown, squeezed, strict=True)]
    moofs = sum(b.type == "moof" for b in iter_boxes(first))
    only_fragment = whole and len(paths) == 1 and moofs == 1
    if only_fragment:
        _give_back(durations, offsets, delay)  # the decode timeline keeps its length (below)
    rebuilt = rebuild_moof(first[moof.offset : moof_end], durations, offsets)
    rest = shift_tfdts(first[moof_end:], -delay)
    replace_file(paths[0], first[: moof.offset] + rebuilt + rest)
    for path in paths[1:]:
        replace_file(path, shift_tfdts(path.read_bytes(), -delay))
    if whole and not only_fragment:
        _lengthen_last_sample(paths[-1], info.track_id, defaults, delay)
    return delay


def _give_back(durations: list[int], offsets: list[int], ticks: int) -> None:
    """Lengthen a fragment's decode timeline by `ticks` without moving any frame on screen.

    The last sample in decode order takes them, unless it is also the last one shown: its
    duration is how long the final frame stays, so the sample before it takes them and the
    last sample's composition offset shrinks by as much (it decodes `ticks` later, shows at
    the same time). That offset is the B-frame delay itself for x264's final P frame; were
    it smaller (it would turn negative), the last sample takes the ticks after all."""
    last = len(durations) - 1
    shown = [sum(durations[:i]) + offsets[i] for i in range(len(durations))]
    if last > 0 and shown[last] == max(shown) and offsets[last] >= ticks:
        durations[last - 1] += ticks
        offsets[last] -= ticks
    else:
        durations[last] += ticks


def _lengthen_last_sample(path: Path, track_id: int, defaults: SampleDefaults, ticks: int) -> None:
    """Add `ticks` to the duration of the track's last sample in decode order.

    The squeeze shortened the decode timeline by the B-frame delay; the last decoded sample
    gives it back, so the decode timeline ends where the last frame stops being shown and
    readers that time a track by its decode durations (FFmpeg's average frame rate, the
    DASH/HLS durations) see its true length. That sample's presentation is not the last."""
    data = path.read_bytes()
    moofs = [b for b in iter_boxes(data) if b.type == "moof"]
    if not moofs:
        raise MalformedSegmentError(f"{path}: no moof")
    last = moofs[-1]
    count = sample_count(last.payload, track_id)
    samples = read_fragment_samples(data, track_id, defaults)[-count:]
    durations = [s.duration for s in samples]
    offsets = [s.composition_offset for s in samples]
    _give_back(durations, offsets, ticks)
    end = last.offset + last.size
    rebuilt = rebuild_moof(data[last.offset : end], durations, offsets)
    replace_file(path, data[: last.offset] + rebuilt + data[end:])


def _squeeze(decode: list[int], shown: list[int], base: int) -> list[int] | None:
    """Decode times for a fragment's samples: `base` for the first, `decode[i]` from the
    first index n whose decode[n] - base >= n (one tick per squeezed sample), and evenly
    spread in between, each at or before its presentation time; None if impossible."""
    for n in range(1, len(decode)):
        room = decode[n] - base
        if room < n:
            continue
        head = [base + (i * room) // n for i in range(n)]
        if all(head[i] <= shown[i] for i in range(n)):
            return head + decode[n:]
    return None
